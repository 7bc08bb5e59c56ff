package api

import (
	"encoding/json"
	"testing"
	"time"
)

func TestPyJSON(t *testing.T) {
	cases := []struct {
		name string
		v    any
		want string
	}{
		{"ordered", obj{{"b", 1}, {"a", nil}}, `{"b": 1, "a": null}`},
		{"map-sorted", map[string]any{"b": true, "a": []any{json.Number("1.50"), "x"}}, `{"a": [1.50, "x"], "b": true}`},
		{"ensure-ascii", "é – 😀", `"\u00e9 \u2013 \ud83d\ude00"`},
		{"controls", "a\"b\\c\n\t\x01<>&/", `"a\"b\\c\n\t\u0001<>&/"`},
		{"invalid-utf8-and-del", "a\xffb\x7f", "\"a\\ufffdb\x7f\""},
		{"float", 4096.0, `4096`},
		{"empty", []string{}, `[]`},
		{"typed-map", map[string]string{"k": "v"}, `{"k": "v"}`},
	}
	for _, tc := range cases {
		if got := string(pyJSON(tc.v)); got != tc.want {
			t.Errorf("%s: pyJSON = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestPyRepr(t *testing.T) {
	cases := []struct {
		v    any
		want string
	}{
		{"x", `'x'`},
		{"it's", `"it's"`},
		{`both ' and "`, `'both \' and "'`},
		{`back\slash`, `'back\\slash'`},
		{nil, "None"},
		{true, "True"},
		{json.Number("5"), "5"},
		{map[string]any{"op": "add", "v": []any{false}}, `{'op': 'add', 'v': [False]}`},
		{[]string{"add", "replace"}, `['add', 'replace']`},
	}
	for _, tc := range cases {
		if got := pyRepr(tc.v); got != tc.want {
			t.Errorf("pyRepr(%#v) = %s, want %s", tc.v, got, tc.want)
		}
	}
}

func TestIsoTime(t *testing.T) {
	cases := []struct {
		t    time.Time
		want any
	}{
		{time.Time{}, nil},
		{time.Date(2026, 11, 22, 0, 3, 39, 0, time.UTC), "2026-11-22T00:03:39+00:00"},
		{time.Date(2026, 11, 22, 0, 3, 39, 442035999, time.UTC), "2026-11-22T00:03:39.442035+00:00"},
		{time.Date(2026, 11, 22, 1, 3, 39, 0, time.FixedZone("x", 3600)), "2026-11-22T00:03:39+00:00"},
	}
	for _, tc := range cases {
		if got := isoTime(tc.t); got != tc.want {
			t.Errorf("isoTime(%v) = %v, want %v", tc.t, got, tc.want)
		}
	}
}

func TestValidators(t *testing.T) {
	uuids := map[string]bool{
		"1664d7b2-3b3d-4347-8e03-f796dc36bf1e":          true,
		"1664D7B2-3B3D-4347-8E03-F796DC36BF1E":          true,
		"1664d7b23b3d43478e03f796dc36bf1e":              true,
		"{1664d7b2-3b3d-4347-8e03-f796dc36bf1e}":        true,
		"urn:uuid:1664d7b2-3b3d-4347-8e03-f796dc36bf1e": true,
		"1664d7b2-3b3d-4347-8e03-f796dc36bf1":           false,
		"fake-0":                                        false,
		"":                                              false,
	}
	for s, want := range uuids {
		if got := isUUIDLike(s); got != want {
			t.Errorf("isUUIDLike(%q) = %v", s, got)
		}
	}
	names := []struct {
		name string
		ver  int
		want bool
	}{
		{"fake-0", 78, true},
		{"UPPER.case~x_y", 78, true},
		{"UPPER", 9, false},
		{"a_b", 9, false},
		{"host.example.com", 9, true},
		{"bad name", 78, false},
		{"", 78, false},
		{string(make([]byte, 256)), 78, false},
	}
	for _, tc := range names {
		if got := isValidNameAt(tc.name, tc.ver); got != tc.want {
			t.Errorf("isValidNameAt(%q, %d) = %v", tc.name, tc.ver, got)
		}
	}
	macs := map[string]string{"52:54:00:AA:bb:cc": "52:54:00:aa:bb:cc", "52-54-00-aa-bb-cc": "", "52:54:00:aa:bb": ""}
	for in, want := range macs {
		got, ok := normalizeMAC(in)
		if (want == "") == ok || (ok && got != want) {
			t.Errorf("normalizeMAC(%q) = %q, %v", in, got, ok)
		}
	}
	for in, want := range map[string]bool{"true": true, " Yes ": true, "1": true, "off": false, "N": false} {
		if got, err := boolFromString(in); err != nil || got != want {
			t.Errorf("boolFromString(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := boolFromString("maybe"); err == nil {
		t.Error("boolFromString(maybe) did not fail")
	}
}

func TestMaskPassword(t *testing.T) {
	cases := map[string]string{
		"plain text":                        "plain text",
		"password=hunter2":                  "password=******",
		"--password hunter2 --user x":       "--password ****** --user x",
		`{"password": "x"}`:                 `{"password": "******"}`,
		"<password>x</password>":            "<password>******</password>",
		"ipmitool -I lanplus -P secret=abc": "ipmitool -I lanplus -P secret=******",
	}
	for in, want := range cases {
		if got := maskPassword(in); got != want {
			t.Errorf("maskPassword(%q) = %q, want %q", in, got, want)
		}
	}
	got := maskDict(map[string]any{"Admin_Password": "x", "list": []any{"password=y"}, "n": map[string]any{"token": 5}})
	if got["Admin_Password"] != secret || got["n"].(map[string]any)["token"] != secret {
		t.Errorf("maskDict = %v", got)
	}
	if got["list"].([]any)[0] != "password=y" {
		t.Errorf("maskDict walked a list (oslo does not): %v", got["list"])
	}
}
