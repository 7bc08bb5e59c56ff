package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferrumhq/ferrum/shared/proto"
)

func TestExec(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantErr  error  // errors.Is target; nil: success
		wantCode string // the printed Result's error code; "" with data
		wantData map[string]any
	}{
		{name: "ping/echoes-payload", args: []string{"exec", "ping", `{"payload":"hi"}`},
			wantData: map[string]any{"payload": "hi"}},
		{name: "get_status/reports-version", args: []string{"exec", "get_status"},
			wantData: map[string]any{"agent_version": version, "boot_id": "local"}},
		{name: "unknown-command/printed-with-code", args: []string{"exec", "no_such_command"},
			wantErr: errCommandFailed, wantCode: string(proto.CodeUnknownCommand)},
		{name: "bad-args/printed-with-code", args: []string{"exec", "ping", `{"payload":1}`},
			wantErr: errCommandFailed, wantCode: string(proto.CodeBadRequest)},
		{name: "no-name/usage", args: []string{"exec"}, wantErr: flag.ErrHelp},
		{name: "args-not-json/refused", args: []string{"exec", "ping", `{`}, wantErr: errNotJSON},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := subcommands[tc.args[0]](context.Background(), tc.args[1:], &stdout, &stderr)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("exec %q = %v, want %v (stderr %q)", tc.args[1:], err, tc.wantErr, stderr.String())
			}
			if tc.wantCode == "" && tc.wantData == nil {
				if stdout.Len() != 0 {
					t.Errorf("exec %q printed %q, want nothing", tc.args[1:], stdout.String())
				}
				return
			}
			var res struct {
				ID    string         `json:"id"`
				Data  map[string]any `json:"data"`
				Error *proto.Error   `json:"error"`
			}
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Fatalf("exec %q printed %q: %v", tc.args[1:], stdout.String(), err)
			}
			if tc.wantCode != "" {
				if res.Error == nil || string(res.Error.Code) != tc.wantCode {
					t.Errorf("exec %q error = %+v, want code %s", tc.args[1:], res.Error, tc.wantCode)
				}
				return
			}
			got := map[string]any{}
			for k := range tc.wantData {
				got[k] = res.Data[k]
			}
			if diff := cmp.Diff(tc.wantData, got); diff != "" {
				t.Errorf("exec %q data (-want +got):\n%s", tc.args[1:], diff)
			}
		})
	}
}
