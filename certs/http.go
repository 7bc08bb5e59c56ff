package certs

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.step.sm/crypto/jose"

	"github.com/ferrumhq/ferrum/shared/mtls"
)

// EnrollConfig configures the enrollment handler.
type EnrollConfig struct {
	Signer Signer
	// Roots are served at GET /root/{sha256} (step's bootstrap).
	Roots []*x509.Certificate
	// Admit is asked, before the token is spent, whether node may get an agent certificate
	// (it exists and its state expects an agent). The node comes from the token's subject,
	// read unverified: the authority then checks the token's signature and binds the
	// certificate to that same subject. Nil admits every node.
	Admit func(ctx context.Context, node string) error
	// Issued hears of every certificate issued (not called with secrets).
	Issued func(ctx context.Context, node string, leaf *x509.Certificate)
	// TokenKey, when set, is the provisioner key whose signature a token must carry before
	// Admit is asked: a forged token then learns nothing about which nodes exist.
	TokenKey *jose.JSONWebKey
	Log      zerolog.Logger
}

// EnrollHandler serves the step-ca-compatible part of enrollment: POST /1.0/sign
// ({"csr","ott"} → {"crt","ca","certChain"}), GET /root/{sha256}, GET /health. Errors are
// step-ca's {"status","message"}; tokens and keys never reach the log.
func EnrollHandler(cfg EnrollConfig) (http.Handler, error) {
	if cfg.Signer == nil {
		return nil, errors.New("certs: enroll: Signer is required")
	}
	h := &enroll{cfg: cfg, log: cfg.Log.With().Str("component", "enroll").Logger()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /1.0/sign", h.sign)
	mux.HandleFunc("POST /sign", h.sign)
	mux.HandleFunc("GET /root/{sha}", h.root)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux, nil
}

type enroll struct {
	cfg EnrollConfig
	log zerolog.Logger
}

func (h *enroll) sign(w http.ResponseWriter, r *http.Request) {
	var req SignRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	if err := dec.Decode(&req); err != nil {
		h.fail(w, http.StatusBadRequest, "error decoding request", err, "")
		return
	}
	blk, _ := pem.Decode([]byte(req.CSR))
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		h.fail(w, http.StatusBadRequest, "csr is not a PEM certificate request", nil, "")
		return
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err == nil {
		err = csr.CheckSignature()
	}
	if err != nil {
		h.fail(w, http.StatusBadRequest, "invalid certificate request", err, "")
		return
	}
	claims, err := PeekClaims(req.OTT)
	if err == nil && h.cfg.TokenKey != nil {
		err = checkSignature(req.OTT, h.cfg.TokenKey)
	}
	if err != nil || !mtls.IsUUID(claims.Subject) {
		h.fail(w, http.StatusUnauthorized, "invalid token", err, "")
		return
	}
	node := claims.Subject
	if h.cfg.Admit != nil {
		if err := h.cfg.Admit(r.Context(), node); err != nil {
			h.fail(w, http.StatusForbidden, "node does not expect an agent", err, node)
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	chain, err := h.cfg.Signer.Sign(ctx, csr, req.OTT)
	switch {
	case errors.Is(err, ErrTokenRefused):
		h.fail(w, http.StatusUnauthorized, "token refused", err, node)
		return
	case errors.Is(err, ErrRequestRefused):
		h.fail(w, http.StatusForbidden, "certificate request refused", err, node)
		return
	case err != nil:
		h.fail(w, http.StatusInternalServerError, "internal error", err, node)
		return
	}
	leaf := chain[0]
	if id, err := mtls.NodeID(leaf); err != nil || id != node {
		// The template forbids this; refuse rather than hand out a certificate Ferrum would
		// not accept.
		h.fail(w, http.StatusInternalServerError, "issued certificate has the wrong identity", err, node)
		return
	}
	resp := SignResponse{Certificate: pemString(leaf)}
	for _, c := range chain {
		resp.CertChain = append(resp.CertChain, pemString(c))
	}
	if len(chain) > 1 {
		resp.CA = pemString(chain[1])
	}
	h.log.Info().Str("node_id", node).Str("serial", leaf.SerialNumber.String()).
		Time("not_after", leaf.NotAfter).Msg("agent certificate issued")
	if h.cfg.Issued != nil {
		h.cfg.Issued(r.Context(), node, leaf)
	}
	writeJSON(w, http.StatusCreated, resp)
}

func (h *enroll) root(w http.ResponseWriter, r *http.Request) {
	sha := strings.ToLower(strings.ReplaceAll(r.PathValue("sha"), ":", ""))
	for _, c := range h.cfg.Roots {
		if mtls.Fingerprint(c) == sha {
			writeJSON(w, http.StatusOK, map[string]string{"ca": pemString(c)})
			return
		}
	}
	writeJSON(w, http.StatusNotFound, ErrorResponse{Status: http.StatusNotFound, Message: "root not found"})
}

// fail answers with step-ca's error shape; the cause goes to the log only.
func (h *enroll) fail(w http.ResponseWriter, status int, msg string, cause error, node string) {
	ev := h.log.Warn()
	if status >= 500 {
		ev = h.log.Error()
	}
	ev.Err(cause).Str("node_id", node).Int("status", status).Msg("enrollment refused: " + msg)
	writeJSON(w, status, ErrorResponse{Status: status, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

func pemString(c *x509.Certificate) string { return string(certPEM(c)) }

// checkSignature verifies a token's signature only; the authority checks the rest.
func checkSignature(ott string, key *jose.JSONWebKey) error {
	tok, err := jose.ParseSigned(ott)
	if err != nil {
		return fmt.Errorf("certs: parse token: %w", err)
	}
	var c jose.Claims
	if err := tok.Claims(key.Public(), &c); err != nil {
		return fmt.Errorf("certs: token signature: %w", err)
	}
	return nil
}
