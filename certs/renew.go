package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ferrumhq/ferrum/shared/mtls"
)

// Renewer issues a new certificate to an agent already authenticated on its tunnel: it checks
// the CSR names that agent's node, mints a one-time token for it and signs through the same
// Signer as enrollment (so the embedded and the external CA work alike).
type Renewer struct {
	Signer Signer
	Minter *Minter
}

// Renew returns a chain for csr, which must be for node.
func (r *Renewer) Renew(ctx context.Context, node string, csr *x509.CertificateRequest) ([]*x509.Certificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRequestRefused, err)
	}
	var uris []string
	for _, u := range csr.URIs {
		uris = append(uris, u.String())
	}
	if csr.Subject.CommonName != node || !slices.Equal(uris, []string{mtls.NodeURI(node)}) {
		return nil, fmt.Errorf("%w: it does not name node %s", ErrRequestRefused, node)
	}
	if r.Minter == nil || r.Signer == nil {
		return nil, errors.New("certs: renewer not configured")
	}
	m := *r.Minter
	m.TTL = 5 * time.Minute
	ott, err := m.Mint(node)
	if err != nil {
		return nil, err
	}
	return r.Signer.Sign(ctx, csr, ott)
}
