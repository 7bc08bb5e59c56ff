package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
)

// tokenStore is what the PKI (certs.TokenStore) and agentlink (Revocations) need of a store.
type tokenStore interface {
	UseToken(ctx context.Context, id string, expires time.Time) (bool, error)
	IsRevoked(ctx context.Context, serial string) (bool, error)
	RevokeCertificate(ctx context.Context, serial, reason string) error
}

// linkStore is what agentlink records links with, besides conductor.AgentLinkStore.
type linkStore interface {
	conductor.AgentLinkStore
	CloseAgentLinks(ctx context.Context, at time.Time) error
}

func asLinkStore(t *testing.T, s conductor.Store) linkStore {
	t.Helper()
	ls, ok := s.(linkStore)
	if !ok {
		t.Fatalf("%T does not keep agent links (conductor.AgentLinkStore + CloseAgentLinks)", s)
	}
	return ls
}

func asTokenStore(t *testing.T, s conductor.Store) tokenStore {
	t.Helper()
	ts, ok := s.(tokenStore)
	if !ok {
		t.Fatalf("%T does not keep used tokens and revocations", s)
	}
	return ts
}

func testAgentLinks(t *testing.T, s conductor.Store) {
	ctx := context.Background()
	ls := asLinkStore(t, s)
	a := createNode(t, s, "a")
	b := createNode(t, s, "b")
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC)
	status := json.RawMessage(`{"agent_version":"1"}`)
	if err := ls.UpdateAgentLinks(ctx, []node.AgentLink{
		{NodeUUID: a.UUID, TokenIssuedAt: t0, CertSerial: "1"},
		{NodeUUID: "00000000-0000-0000-0000-000000000000", ConnectedAt: t0}, // no such node: dropped
	}); err != nil {
		t.Fatal(err)
	}
	if err := ls.UpdateAgentLinks(ctx, []node.AgentLink{
		{NodeUUID: a.UUID, EnrolledAt: t0.Add(time.Second), ConnectedAt: t0.Add(2 * time.Second), CertSerial: "2",
			ProtocolVersion: 2, Status: status},
		{NodeUUID: b.UUID, ConnectedAt: t0, DisconnectedAt: t0.Add(time.Second)},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := ls.GetAgentLinks(ctx, []string{a.UUID, b.UUID, "00000000-0000-0000-0000-000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*node.AgentLink{
		a.UUID: {NodeUUID: a.UUID, TokenIssuedAt: t0, EnrolledAt: t0.Add(time.Second), ConnectedAt: t0.Add(2 * time.Second),
			CertSerial: "2", ProtocolVersion: 2, Status: status},
		b.UUID: {NodeUUID: b.UUID, ConnectedAt: t0, DisconnectedAt: t0.Add(time.Second)},
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("GetAgentLinks (-want +got):\n%s", diff)
	}

	// A restarted controller closes the links a crash left open, and only those.
	at := t0.Add(time.Hour)
	if err := ls.CloseAgentLinks(ctx, at); err != nil {
		t.Fatal(err)
	}
	got, err = ls.GetAgentLinks(ctx, []string{a.UUID, b.UUID})
	if err != nil {
		t.Fatal(err)
	}
	if got[a.UUID].Connected() || !got[a.UUID].DisconnectedAt.Equal(at) {
		t.Errorf("open link after CloseAgentLinks: %+v", got[a.UUID])
	}
	if !got[b.UUID].DisconnectedAt.Equal(t0.Add(time.Second)) {
		t.Errorf("closed link changed: %+v", got[b.UUID])
	}

	// Links go with their node.
	reserve(t, s, a.UUID, "host")
	if err := s.DeleteNode(ctx, a.UUID, "host"); err != nil {
		t.Fatal(err)
	}
	got, err = ls.GetAgentLinks(ctx, []string{a.UUID})
	if err != nil || len(got) != 0 {
		t.Errorf("link of a deleted node: %+v, %v", got, err)
	}
	if got, err := ls.GetAgentLinks(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("GetAgentLinks(nil) = %v, %v", got, err)
	}
}

func testTokensAndRevocations(t *testing.T, s conductor.Store) {
	ctx := context.Background()
	ts := asTokenStore(t, s)
	exp := time.Now().Add(time.Hour)
	for i, want := range []bool{true, false, false} {
		if got, err := ts.UseToken(ctx, "jti-1", exp); err != nil || got != want {
			t.Errorf("UseToken #%d = %v, %v; want %v", i+1, got, err, want)
		}
	}
	if got, err := ts.UseToken(ctx, "jti-2", exp); err != nil || !got {
		t.Errorf("UseToken(another id) = %v, %v", got, err)
	}
	// A token past its expiry can no longer be accepted: its record may go.
	if _, err := ts.UseToken(ctx, "jti-old", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.UseToken(ctx, "jti-3", exp); err != nil {
		t.Fatal(err)
	}
	if got, err := ts.UseToken(ctx, "jti-1", exp); err != nil || got {
		t.Errorf("UseToken(jti-1) after cleanup = %v, %v; want still used", got, err)
	}

	if r, err := ts.IsRevoked(ctx, "42"); err != nil || r {
		t.Errorf("IsRevoked before = %v, %v", r, err)
	}
	for range 2 {
		if err := ts.RevokeCertificate(ctx, "42", "decommissioned"); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := ts.IsRevoked(ctx, "42"); err != nil || !r {
		t.Errorf("IsRevoked after = %v, %v", r, err)
	}
	if r, err := ts.IsRevoked(ctx, "43"); err != nil || r {
		t.Errorf("IsRevoked(other) = %v, %v", r, err)
	}
}
