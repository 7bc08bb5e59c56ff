package api

import (
	"regexp"
	"strings"
)

// secret is what a masked value shows.
const secret = "******"

// sanitizeKeys is oslo.utils' strutils._SANITIZE_KEYS (6.0.1): a key containing any of them
// (case-insensitive) has its value masked.
var sanitizeKeys = []string{"adminpass", "admin_pass", "password", "admin_password",
	"auth_token", "new_pass", "auth_password", "secret_uuid", "secret", "sys_pswd", "token",
	"configdrive", "chappassword", "encrypted_key", "private_key", "fernetkey", "sslkey",
	"passphrase", "cephclusterfsid", "octaviaheartbeatkey", "rabbitcookie",
	"cephmanilaclientkey", "pacemakerremoteauthkey", "designaterndckey", "cephadminkey",
	"heatauthencryptionkey", "cephclientkey", "keystonecredential", "barbicansimplecryptokek",
	"cephrgwkey", "swifthashsuffix", "migrationsshkey", "cephmdskey", "cephmonkey",
	// Not in oslo's list: IPMI's Kg key (ipmi_hex_kg_key) is a secret too.
	"kg_key"}

// maskPasswordPatterns are strutils' value patterns (_FORMAT_PATTERNS_2 then _1) with the
// key list as one alternation; group 1 (and 2) survive, the secret between is replaced.
var maskPasswordPatterns = func() []*regexp.Regexp {
	key := "(?:" + strings.Join(sanitizeKeys, "|") + ")"
	raw := []string{
		`(KEY[0-9]*\s*[=]\s*[\"'])[^\"']*([\"'])`,
		`(KEY[0-9]*\s*[=]\s*["])[^"]*(["])`,
		`(KEY[0-9]*\s*[=]\s*['])[^']*(['])`,
		`(KEY[0-9]*\s+[\"'])[^\"']*([\"'])`,
		`([-]{2}KEY[0-9]*\s+)[^'^"^=^\s]+([\s]*)`,
		`(<KEY[0-9]*>)[^<]*(</KEY[0-9]*>)`,
		`([\"']KEY[0-9]*[\"']\s*:\s*[\"'])[^\"']*([\"'])`,
		`(['"][^"']*KEY[0-9]*['"]\s*:\s*u?['"])[^"']*(['"])`,
		`(['"][^'"]*KEY[0-9]*['"]\s*,\s*'--?[A-z]+'\s*,\s*u?['"])[^"']*(['"])`,
		`(KEY[0-9]*\s*--?[A-z]+\s*)\S+(\s*)`,
		`(KEY[0-9]*\s*[=]\s*)[^\s^'^"]+()`,
	}
	out := make([]*regexp.Regexp, len(raw))
	for i, p := range raw {
		out[i] = regexp.MustCompile("(?s)" + strings.ReplaceAll(p, "KEY", key))
	}
	return out
}()

// keyIsSecret reports whether a dict key names a secret.
func keyIsSecret(k string) bool {
	l := strings.ToLower(k)
	for _, s := range sanitizeKeys {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// maskPassword hides secrets inside a free-text value ("password=x", "--password x", …).
func maskPassword(s string) string {
	if !keyIsSecret(s) {
		return s
	}
	for _, re := range maskPasswordPatterns {
		s = re.ReplaceAllString(s, "${1}"+secret+"${2}")
	}
	return s
}

// maskDict is strutils.mask_dict_password with Ironic's "******": secret keys are masked,
// nested dicts are walked, other string values go through maskPassword. It returns a copy.
func maskDict(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch v := v.(type) {
		case map[string]any:
			out[k] = maskDict(v)
			continue
		}
		switch {
		case keyIsSecret(k):
			out[k] = secret
		default:
			if s, ok := v.(string); ok {
				out[k] = maskPassword(s)
			} else {
				out[k] = v
			}
		}
	}
	return out
}

// maskInstanceInfo masks instance_info as Ironic's node_sanitize does: the dict masking plus
// configdrive and image_url, which may be URLs with credentials.
func maskInstanceInfo(m map[string]any) map[string]any {
	out := maskDict(m)
	for _, k := range []string{"configdrive", "image_url"} {
		if truthy(out[k]) {
			out[k] = secret
		}
	}
	return out
}

// maskInternalInfo hides the agent token in driver_internal_info.
func maskInternalInfo(m map[string]any) map[string]any {
	if !truthy(m["agent_secret_token"]) {
		return m
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	out["agent_secret_token"] = secret
	return out
}

// truthy is Python's bool() of a decoded JSON value.
func truthy(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	case string:
		return v != ""
	case map[string]any:
		return len(v) > 0
	case []any:
		return len(v) > 0
	case float64:
		return v != 0
	case int:
		return v != 0
	}
	if n, ok := v.(interface{ String() string }); ok {
		s := n.String()
		return s != "0" && s != "0.0" && s != ""
	}
	return true
}
