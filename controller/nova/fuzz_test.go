package nova

import (
	"encoding/json"
	"testing"
)

// FuzzResults: any answer body gives results for every event sent, or an error; never a panic.
func FuzzResults(f *testing.F) {
	f.Add(`{"events":[{"name":"power-update","server_uuid":"3b2a5e4c-1111-4111-8111-111111111111","tag":"POWER_OFF","status":"completed","code":200}]}`)
	f.Add(`{"events":[{"server_uuid":"3b2a5e4c-1111-4111-8111-111111111111","code":404}]}`)
	f.Add(`{"events":[{"server_uuid":"x"}]}`)
	f.Add(`{"events":null}`)
	f.Add(`[]`)
	req := []Event{{Name: "power-update", ServerUUID: "3b2a5e4c-1111-4111-8111-111111111111", Tag: "POWER_OFF"}}
	f.Fuzz(func(t *testing.T, body string) {
		var a answer
		if json.Unmarshal([]byte(body), &a) != nil {
			return
		}
		res, err := results(req, a.Events)
		if err == nil && len(res) != len(req) {
			t.Fatalf("%d results for %d events", len(res), len(req))
		}
	})
}
