package agentlink

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"time"

	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// renew answers a renewal request of an agent authenticated on se.
func (s *Server) renew(se *session, req proto.RenewRequest) proto.RenewResponse {
	log := s.log.With().Str("node_id", se.Node).Logger()
	fail := func(code proto.Code, format string, args ...any) proto.RenewResponse {
		e := proto.Errorf(code, format, args...)
		log.Warn().Str("code", string(code)).Str("error", e.Message).Msg("certificate renewal refused")
		return proto.RenewResponse{Error: e}
	}
	if s.cfg.Renewer == nil || !se.has(proto.FeatureRenew) {
		return fail(proto.CodeUnsupported, "renewal is not enabled")
	}
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if err := s.verify(se.Node, se.leaf); err != nil {
		return fail(proto.CodeUnauthorized, "%v", err)
	}
	blk, _ := pem.Decode([]byte(req.CSR))
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return fail(proto.CodeBadRequest, "csr is not a PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return fail(proto.CodeBadRequest, "csr: %v", err)
	}
	chain, err := s.cfg.Renewer.Renew(ctx, se.Node, csr)
	if err != nil {
		return fail(proto.CodeFailed, "%v", err)
	}
	resp := proto.RenewResponse{}
	for _, c := range chain {
		resp.Chain = append(resp.Chain, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	}
	leaf := chain[0]
	s.status.update(node.AgentLink{NodeUUID: se.Node, CertSerial: leaf.SerialNumber.String(), CertNotAfter: leaf.NotAfter.UTC()})
	log.Info().Str("serial", leaf.SerialNumber.String()).Time("not_after", leaf.NotAfter).Msg("agent certificate renewed")
	return resp
}
