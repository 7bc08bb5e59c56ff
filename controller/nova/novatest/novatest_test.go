package novatest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestContract: the double refuses what Nova refuses.
func TestContract(t *testing.T) {
	const id = "3b2a5e4c-1111-4111-8111-111111111111"
	s, err := Start(Config{
		Users:     []User{{Name: "svc", Password: "pw", Domain: "Default", Project: "service", Roles: []string{"service"}}, {Name: "member", Password: "pw", Domain: "Default", Project: "p", Roles: []string{"member"}}},
		Instances: []Instance{{UUID: id, HasHost: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	auth := func(user string) string {
		body := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"` + user + `","password":"pw","domain":{"name":"Default"}}}},"scope":{"project":{"name":"service","domain":{"name":"Default"}}}}}`
		resp, err := http.Post(s.AuthURL()+"/auth/tokens", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("auth %s: %d", user, resp.StatusCode)
		}
		return resp.Header.Get("X-Subject-Token")
	}
	svc, member := auth("svc"), auth("member")
	good := `{"events":[{"name":"power-update","server_uuid":"` + id + `","tag":"POWER_ON"}]}`
	std := map[string]string{"OpenStack-API-Version": "compute 2.76", "X-OpenStack-Nova-API-Version": "2.76", "Content-Type": "application/json"}
	with := func(k, v string) map[string]string {
		h := map[string]string{}
		for a, b := range std {
			h[a] = b
		}
		if v == "" {
			delete(h, k)
		} else {
			h[k] = v
		}
		return h
	}
	tests := []struct {
		name     string
		token    string
		headers  map[string]string
		body     string
		want     int
		wantCode []int // per-event codes
	}{
		{"accepted", svc, std, good, 200, []int{200}},
		{"no token", "", std, good, 401, nil},
		{"bad token", "gAAAAbogus", std, good, 401, nil},
		{"no service role", member, std, good, 403, nil},
		{"no new-style header", svc, with("OpenStack-API-Version", ""), good, 400, nil},
		{"no legacy header", svc, with("X-OpenStack-Nova-API-Version", ""), good, 400, nil},
		{"2.75 has no power-update", svc, with("OpenStack-API-Version", "compute 2.75"), good, 400, nil},
		{"2.75 both headers", svc, map[string]string{"OpenStack-API-Version": "compute 2.75", "X-OpenStack-Nova-API-Version": "2.75", "Content-Type": "application/json"}, good, 400, nil},
		{"too new", svc, map[string]string{"OpenStack-API-Version": "compute 2.200", "X-OpenStack-Nova-API-Version": "2.200", "Content-Type": "application/json"}, good, 406, nil},
		{"not json", svc, with("Content-Type", "text/plain"), good, 415, nil},
		{"no events", svc, std, `{}`, 400, nil},
		{"empty events", svc, std, `{"events":[]}`, 400, nil},
		{"extra top-level", svc, std, `{"events":[{"name":"power-update","server_uuid":"` + id + `","tag":"POWER_ON"}],"x":1}`, 400, nil},
		{"extra event key", svc, std, `{"events":[{"name":"power-update","server_uuid":"` + id + `","tag":"POWER_ON","code":200}]}`, 400, nil},
		{"bad uuid", svc, std, `{"events":[{"name":"power-update","server_uuid":"nope","tag":"POWER_ON"}]}`, 400, nil},
		{"bad name", svc, std, `{"events":[{"name":"power-on","server_uuid":"` + id + `","tag":"POWER_ON"}]}`, 400, nil},
		{"bad status", svc, std, `{"events":[{"name":"power-update","server_uuid":"` + id + `","tag":"POWER_ON","status":"done"}]}`, 400, nil},
		{"long tag", svc, std, `{"events":[{"name":"power-update","server_uuid":"` + id + `","tag":"` + strings.Repeat("x", 256) + `"}]}`, 400, nil},
		{"no tag", svc, std, `{"events":[{"name":"power-update","server_uuid":"` + id + `"},{"name":"power-update","server_uuid":"` + id + `","tag":"POWER_OFF"}]}`, 207, []int{400, 200}},
		{"unknown instance", svc, std, `{"events":[{"name":"power-update","server_uuid":"99999999-1111-4111-8111-111111111111","tag":"POWER_OFF"}]}`, 207, []int{404}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", s.URL+"/compute/v2.1/os-server-external-events", bytes.NewBufferString(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			if tc.token != "" {
				req.Header.Set("X-Auth-Token", tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.wantCode == nil {
				return
			}
			var out struct {
				Events []struct {
					Code   int    `json:"code"`
					Status string `json:"status"`
				} `json:"events"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
			if len(out.Events) != len(tc.wantCode) {
				t.Fatalf("events %+v, want codes %v", out.Events, tc.wantCode)
			}
			for i, e := range out.Events {
				wantStatus := "completed"
				if e.Code != 200 {
					wantStatus = "failed"
				}
				if e.Code != tc.wantCode[i] || e.Status != wantStatus {
					t.Errorf("event %d: %d %s, want %d %s", i, e.Code, e.Status, tc.wantCode[i], wantStatus)
				}
			}
		})
	}
}
