package nova

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/config"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/rs/zerolog"
)

// Microversion is the compute API microversion power-update needs.
const Microversion = "2.76"

// Event is one external event as Nova's schema at 2.76 takes it.
type Event struct {
	Name       string `json:"name"`
	ServerUUID string `json:"server_uuid"`
	Tag        string `json:"tag,omitempty"`
}

// Result is Nova's answer for one event.
type Result struct {
	Code   int
	Status string
	Raw    string // the event as Nova echoed it, for logs
}

// EventSender sends external events; results are in request order. *Client is the real one.
type EventSender interface {
	Send(ctx context.Context, events []Event) ([]Result, error)
}

// HTTPError is an answer other than 200 or 207.
type HTTPError struct {
	Code int
	Body string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("Nova answered HTTP %d: %s", e.Code, truncate(e.Body, 512))
}

// BadRequestError is a 400 for the whole request: Nova's schema refused it.
type BadRequestError struct{ HTTPError }

func (e *BadRequestError) Unwrap() error { return &e.HTTPError }

// ClientConfig says how to reach Nova: a cloud of clouds.yaml (OS_CLIENT_CONFIG_FILE, then
// ./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml), with password
// or application credential authentication against Keystone v3.
type ClientConfig struct {
	Cloud      string // the cloud's name in clouds.yaml (required)
	CloudsFile string // a clouds.yaml to read instead of the search path
	Region     string // overrides the cloud's region_name
	Interface  string // public, internal or admin; overrides the cloud's interface
	// Endpoint is the compute endpoint (…/v2.1) to use instead of the service catalog's.
	Endpoint string
	// Timeout bounds one request, authentication included [30s].
	Timeout time.Duration
	// RenewBefore re-authenticates when the token expires within this time [2m]; a 401 also
	// re-authenticates (once per request).
	RenewBefore time.Duration
}

// Client sends events through gophercloud. It authenticates on first use and again when the
// token nears its expiry or Nova answers 401.
type Client struct {
	cfg  ClientConfig
	log  zerolog.Logger
	ao   gophercloud.AuthOptions
	eo   gophercloud.EndpointOpts
	http http.Client

	mu      sync.Mutex
	compute *gophercloud.ServiceClient
	expires time.Time
}

// NewClient reads the cloud's settings; it does not contact Keystone yet.
func NewClient(cfg ClientConfig, log zerolog.Logger) (*Client, error) {
	if cfg.Cloud == "" {
		return nil, errors.New("nova: a clouds.yaml cloud name is required (--nova-cloud)")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.RenewBefore <= 0 {
		cfg.RenewBefore = 2 * time.Minute
	}
	opts := []clouds.ParseOption{clouds.WithCloudName(cfg.Cloud)}
	if cfg.CloudsFile != "" {
		opts = append(opts, clouds.WithLocations(cfg.CloudsFile))
	}
	if cfg.Region != "" {
		opts = append(opts, clouds.WithRegion(cfg.Region))
	}
	if cfg.Interface != "" {
		switch cfg.Interface {
		case "public", "internal", "admin":
		default:
			return nil, fmt.Errorf("nova: interface must be public, internal or admin, got %q", cfg.Interface)
		}
		opts = append(opts, clouds.WithEndpointType(cfg.Interface))
	}
	ao, eo, tlsConfig, err := clouds.Parse(opts...)
	if err != nil {
		return nil, fmt.Errorf("nova: cloud %q: %w", cfg.Cloud, err)
	}
	if ao.IdentityEndpoint == "" {
		return nil, fmt.Errorf("nova: cloud %q has no auth_url", cfg.Cloud)
	}
	ao.AllowReauth = true
	c := &Client{cfg: cfg, log: log.With().Str("component", "nova").Logger(), ao: ao, eo: eo}
	if tlsConfig != nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = tlsConfig
		c.http.Transport = t
	}
	return c, nil
}

// service returns the compute client, authenticating when there is none or the token is
// about to expire.
func (c *Client) service(ctx context.Context) (*gophercloud.ServiceClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.compute != nil && time.Until(c.expires) > c.cfg.RenewBefore {
		return c.compute, nil
	}
	if c.compute != nil {
		pc := c.compute.ProviderClient
		if err := pc.Reauthenticate(ctx, pc.Token()); err != nil {
			return nil, fmt.Errorf("nova: renewing the Keystone token: %w", err)
		}
		c.expires = tokenExpiry(pc)
		c.log.Debug().Time("expires_at", c.expires).Msg("Keystone token renewed")
		return c.compute, nil
	}
	pc, err := config.NewProviderClient(ctx, c.ao, config.WithHTTPClient(c.http))
	if err != nil {
		return nil, fmt.Errorf("nova: Keystone authentication at %s: %w", c.ao.IdentityEndpoint, err)
	}
	var sc *gophercloud.ServiceClient
	if c.cfg.Endpoint != "" {
		sc = &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: gophercloud.NormalizeURL(c.cfg.Endpoint), Type: "compute"}
	} else if sc, err = openstack.NewComputeV2(pc, c.eo); err != nil {
		return nil, fmt.Errorf("nova: compute endpoint (region %q, interface %q): %w", c.eo.Region, c.eo.Availability, err)
	}
	sc.Microversion = Microversion
	c.compute, c.expires = sc, tokenExpiry(pc)
	c.log.Info().Str("endpoint", sc.Endpoint).Time("expires_at", c.expires).Msg("authenticated with Keystone")
	return sc, nil
}

// tokenExpiry is the current token's expiry, or an hour from now when Keystone did not say.
func tokenExpiry(pc *gophercloud.ProviderClient) time.Time {
	if r, ok := pc.GetAuthResult().(tokens.CreateResult); ok {
		if tok, err := r.ExtractToken(); err == nil && !tok.ExpiresAt.IsZero() {
			return tok.ExpiresAt
		}
	}
	return time.Now().Add(time.Hour)
}

// forget drops the compute client so the next call authenticates from scratch.
func (c *Client) forget() {
	c.mu.Lock()
	c.compute = nil
	c.mu.Unlock()
}

type eventsBody struct {
	Events []Event `json:"events"`
}

type answer struct {
	Events []json.RawMessage `json:"events"`
}

// Send posts the events and returns Nova's per-event results, in request order.
func (c *Client) Send(ctx context.Context, events []Event) ([]Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	sc, err := c.service(ctx)
	if err != nil {
		return nil, err
	}
	var out answer
	resp, err := sc.Post(ctx, sc.ServiceURL("os-server-external-events"), eventsBody{Events: events}, &out,
		&gophercloud.RequestOpts{OkCodes: []int{200, 207}})
	if err != nil {
		var ue gophercloud.ErrUnexpectedResponseCode
		if errors.As(err, &ue) {
			he := HTTPError{Code: ue.Actual, Body: string(ue.Body)}
			if ue.Actual == http.StatusUnauthorized {
				// gophercloud re-authenticated once and still got 401: start over next time.
				c.forget()
			}
			if ue.Actual == http.StatusBadRequest {
				return nil, &BadRequestError{he}
			}
			return nil, &he
		}
		return nil, fmt.Errorf("nova: %w", err)
	}
	_ = resp
	return results(events, out.Events)
}

// results matches Nova's echoed events to the request by position, checking server_uuid.
func results(req []Event, got []json.RawMessage) ([]Result, error) {
	if len(got) != len(req) {
		return nil, fmt.Errorf("nova: answered %d events for %d sent", len(got), len(req))
	}
	out := make([]Result, len(req))
	for i, raw := range got {
		var e struct {
			ServerUUID string `json:"server_uuid"`
			Status     string `json:"status"`
			Code       *int   `json:"code"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("nova: malformed event in the answer: %w", err)
		}
		if e.Code == nil {
			return nil, fmt.Errorf("nova: event %d of the answer has no code: %s", i, truncate(string(raw), 256))
		}
		if !strings.EqualFold(e.ServerUUID, req[i].ServerUUID) {
			return nil, fmt.Errorf("nova: event %d of the answer is for server %s, not %s", i, e.ServerUUID, req[i].ServerUUID)
		}
		out[i] = Result{Code: *e.Code, Status: e.Status, Raw: string(raw)}
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
