// Package config loads the controller's settings: embedded defaults, then an optional YAML file,
// then FERRUM_* environment variables, then command-line flags, each overriding the one before.
// Only controller/cmd imports it.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is every setting of ferrum-controller. The yaml name is also the flag name (with
// dashes) and the environment variable (FERRUM_ + upper case with underscores).
type Config struct {
	APIAddr        string `yaml:"api_addr" help:"address the Ironic-compatible API listens on"`
	DataDir        string `yaml:"data_dir" help:"directory for the SQLite database and other state"`
	Database       string `yaml:"database" help:"database: a SQLite file path (default DATA_DIR/ferrum.db), or a postgres:// URL shared by several controllers"`
	Hostname       string `yaml:"hostname" help:"this conductor's name (default: the host name)"`
	ConductorGroup string `yaml:"conductor_group" help:"conductor group served by this controller"`

	LogLevel  string `yaml:"log_level" help:"debug, info, warn or error"`
	LogFormat string `yaml:"log_format" help:"json, console, or auto (console on a terminal)"`

	Auth         string `yaml:"auth" help:"noauth (loopback only) or http_basic"`
	HtpasswdFile string `yaml:"htpasswd_file" help:"htpasswd file with bcrypt hashes for http_basic"`
	TLSCertFile  string `yaml:"tls_cert_file" help:"serve the API over TLS with this certificate (PEM)"`
	TLSKeyFile   string `yaml:"tls_key_file" help:"private key for tls_cert_file (PEM)"`
	MaxBodyBytes int64  `yaml:"max_body_bytes" help:"largest accepted request body"`

	Workers                int           `yaml:"workers" help:"concurrent async tasks"`
	LockTimeout            time.Duration `yaml:"lock_timeout" help:"lifetime of a node reservation (renewed while held)"`
	LockRetries            int           `yaml:"lock_retries" help:"retries of a request on a locked node"`
	LockRetryInterval      time.Duration `yaml:"lock_retry_interval" help:"pause between those retries"`
	CheckInterval          time.Duration `yaml:"check_interval" help:"how often wait-state timeouts are checked"`
	DeployCallbackTimeout  time.Duration `yaml:"deploy_callback_timeout" help:"wait call-back timeout"`
	CleanCallbackTimeout   time.Duration `yaml:"clean_callback_timeout" help:"clean wait timeout"`
	InspectWaitTimeout     time.Duration `yaml:"inspect_wait_timeout" help:"inspect wait timeout"`
	RescueCallbackTimeout  time.Duration `yaml:"rescue_callback_timeout" help:"rescue wait timeout"`
	ShutdownTimeout        time.Duration `yaml:"shutdown_timeout" help:"how long SIGTERM waits for running tasks"`
	HeartbeatInterval      time.Duration `yaml:"heartbeat_interval" help:"how often this conductor refreshes its row in the conductors table"`
	HeartbeatTimeout       time.Duration `yaml:"heartbeat_timeout" help:"a conductor whose row is older than this is dead: its nodes are taken over"`
	DefaultResourceClass   string        `yaml:"default_resource_class" help:"resource class of nodes created without one"`
	AutomatedClean         bool          `yaml:"automated_clean" help:"clean nodes on provide and undeploy"`
	AllowDeletingAvailable bool          `yaml:"allow_deleting_available" help:"allow deleting available nodes"`

	PowerSyncInterval            time.Duration `yaml:"power_sync_interval" help:"how often power states are read and reconciled with the records (0 disables)"`
	PowerSyncWorkers             int           `yaml:"power_sync_workers" help:"concurrent power state reads of a sync pass"`
	PowerSyncSlowWorkers         int           `yaml:"power_sync_slow_workers" help:"concurrent reads for nodes whose last sync failed"`
	PowerStateSyncMaxRetries     int           `yaml:"power_state_sync_max_retries" help:"failed syncs in a row before a node goes into maintenance (power failure)"`
	ForcePowerStateDuringSync    bool          `yaml:"force_power_state_during_sync" help:"on a mismatch drive the hardware to the recorded state (false: record the hardware's)"`
	PowerFailureRecoveryInterval time.Duration `yaml:"power_failure_recovery_interval" help:"how often nodes in maintenance for a power failure are retried (0 disables)"`
	PowerStateChangeTimeout      time.Duration `yaml:"power_state_change_timeout" help:"how long a power change may take to show in the BMC's status"`
	SoftPowerOffTimeout          time.Duration `yaml:"soft_power_off_timeout" help:"the same for soft power off and soft reboot"`
	DefaultBootMode              string        `yaml:"default_boot_mode" help:"boot mode of nodes that ask for none: uefi or bios"`

	IPMITimeout          time.Duration `yaml:"ipmi_timeout" help:"ipmi: wait for one BMC reply"`
	IPMIAttempts         int           `yaml:"ipmi_attempts" help:"ipmi: sends of a request before giving up"`
	IPMICallTimeout      time.Duration `yaml:"ipmi_call_timeout" help:"ipmi: bound on one operation, reconnecting included"`
	IPMIFailureThreshold int           `yaml:"ipmi_failure_threshold" help:"ipmi: failed calls in a row after which a BMC's calls fail fast until a probe succeeds"`
	IPMIProbeInterval    time.Duration `yaml:"ipmi_probe_interval" help:"ipmi: first pause before probing a failing BMC (doubles up to 5m)"`

	AgentAddr              string        `yaml:"agent_addr" help:"address of the agents' mutual-TLS tunnel and enrollment (empty: no agents)"`
	AgentAdvertiseAddr     string        `yaml:"agent_advertise_addr" help:"address agents are told to dial (default agent_addr, or HOSTNAME:port when it listens on all addresses)"`
	PKIDir                 string        `yaml:"pki_dir" help:"PKI directory, created on first start (default DATA_DIR/pki)"`
	AgentCertTTL           time.Duration `yaml:"agent_cert_ttl" help:"lifetime of agent client certificates (agents renew at 2/3)"`
	AgentTokenTTL          time.Duration `yaml:"agent_token_ttl" help:"lifetime of one-time enrollment tokens"`
	AgentResumeTimeout     time.Duration `yaml:"agent_resume_timeout" help:"how long a command waits for its agent to come back after the link drops"`
	AgentHeartbeatInterval time.Duration `yaml:"agent_heartbeat_interval" help:"how often agents send a heartbeat"`
	AgentTLSCertFile       string        `yaml:"agent_tls_cert_file" help:"controller certificate chain for agents, ending at the root (default: issued from the PKI)"`
	AgentTLSKeyFile        string        `yaml:"agent_tls_key_file" help:"private key for agent_tls_cert_file"`
	CAURL                  string        `yaml:"ca_url" help:"external step-ca URL for agent certificates (default: the embedded authority)"`
	CARootFile             string        `yaml:"ca_root_file" help:"root certificate of the external step-ca, then its intermediates (PEM; agents send only their leaf)"`
	CAProvisioner          string        `yaml:"ca_provisioner" help:"name of the external step-ca's JWK provisioner for agents"`
	CAProvisionerKeyFile   string        `yaml:"ca_provisioner_key_file" help:"private JWK (JSON) of that provisioner: it signs enrollment tokens"`

	BootAddr          string `yaml:"boot_addr" help:"address of the HTTP boot server: iPXE scripts, kernel and initramfs (empty: none; needs agent_addr)"`
	BootAdvertiseAddr string `yaml:"boot_advertise_addr" help:"HOST:PORT machines fetch boot files from (default boot_addr, or HOSTNAME:port when it listens on all addresses)"`
	BootTFTPAddr      string `yaml:"boot_tftp_addr" help:"UDP address of the built-in TFTP server (boot.ipxe and Debian's iPXE binaries; empty: none)"`
	BootKernel        string `yaml:"boot_kernel" help:"the agent ramdisk's kernel"`
	BootInitramfs     string `yaml:"boot_initramfs" help:"the agent ramdisk's initramfs"`
	BootKernelArgs    string `yaml:"boot_kernel_args" help:"extra kernel arguments of the agent ramdisk (e.g. console=ttyS0,115200)"`

	EraseDevicesPriority         int `yaml:"erase_devices_priority" help:"priority of erase_devices in automated cleaning (-1: the agent's, 10; 0: skip)"`
	EraseDevicesMetadataPriority int `yaml:"erase_devices_metadata_priority" help:"priority of erase_devices_metadata in automated cleaning (-1: the agent's, 99; 0: skip)"`

	NovaNotifications bool          `yaml:"nova_notifications" help:"tell Nova of power changes (power-update events) when nova_cloud is set"`
	NovaCloud         string        `yaml:"nova_cloud" help:"the clouds.yaml cloud whose Keystone and Nova receive power-update events (empty: none)"`
	NovaCloudsFile    string        `yaml:"nova_clouds_file" help:"clouds.yaml to read (default: OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack, /etc/openstack)"`
	NovaRegion        string        `yaml:"nova_region" help:"region of Nova's endpoint (default: the cloud's region_name)"`
	NovaInterface     string        `yaml:"nova_interface" help:"public, internal or admin endpoint (default: the cloud's interface, else public)"`
	NovaEndpoint      string        `yaml:"nova_endpoint" help:"Nova's compute endpoint URL (…/v2.1) instead of the service catalog's"`
	NovaBatchSize     int           `yaml:"nova_batch_size" help:"events (of as many nodes) sent in one request"`
	NovaMinBackoff    time.Duration `yaml:"nova_min_backoff" help:"first retry delay of an undelivered event (doubles per attempt)"`
	NovaMaxBackoff    time.Duration `yaml:"nova_max_backoff" help:"longest retry delay of an undelivered event"`
	NovaPollInterval  time.Duration `yaml:"nova_poll_interval" help:"how often the outbox is checked for events due for a retry"`
	NovaGiveUpAfter   time.Duration `yaml:"nova_give_up_after" help:"an event still undelivered after this long fails for good"`
	NovaRetention     time.Duration `yaml:"nova_event_retention" help:"how long delivered and failed events stay visible in GET /v1/power_events"`

	FakePowerDelay   time.Duration `yaml:"fake_power_delay" help:"fake-hardware: duration of a power action"`
	FakeDeployDelay  time.Duration `yaml:"fake_deploy_delay" help:"fake-hardware: duration of deploy, tear-down and rescue"`
	FakeCleanDelay   time.Duration `yaml:"fake_clean_delay" help:"fake-hardware: duration of cleaning"`
	FakeInspectDelay time.Duration `yaml:"fake_inspect_delay" help:"fake-hardware: duration of inspection"`
}

// Defaults are the embedded settings: SQLite in ./ferrum-data, API on 127.0.0.1:6385, noauth.
func Defaults() Config {
	return Config{
		APIAddr:               "127.0.0.1:6385",
		DataDir:               "ferrum-data",
		LogLevel:              "info",
		LogFormat:             "auto",
		Auth:                  "noauth",
		MaxBodyBytes:          1 << 20,
		Workers:               100,
		LockTimeout:           60 * time.Second,
		LockRetries:           3,
		LockRetryInterval:     time.Second,
		CheckInterval:         60 * time.Second,
		DeployCallbackTimeout: 30 * time.Minute,
		CleanCallbackTimeout:  30 * time.Minute,
		InspectWaitTimeout:    30 * time.Minute,
		RescueCallbackTimeout: 30 * time.Minute,
		ShutdownTimeout:       30 * time.Second,
		HeartbeatInterval:     10 * time.Second,
		HeartbeatTimeout:      60 * time.Second,
		AutomatedClean:        true,

		PowerSyncInterval:            60 * time.Second,
		PowerSyncWorkers:             64,
		PowerSyncSlowWorkers:         64,
		PowerStateSyncMaxRetries:     3,
		ForcePowerStateDuringSync:    true,
		PowerFailureRecoveryInterval: 300 * time.Second,
		PowerStateChangeTimeout:      60 * time.Second,
		SoftPowerOffTimeout:          600 * time.Second,
		DefaultBootMode:              "uefi",
		IPMITimeout:                  time.Second,
		IPMIAttempts:                 2,
		IPMICallTimeout:              15 * time.Second,
		IPMIFailureThreshold:         2,
		IPMIProbeInterval:            10 * time.Second,

		EraseDevicesPriority:         -1,
		EraseDevicesMetadataPriority: -1,

		NovaNotifications: true,
		NovaBatchSize:     100,
		NovaMinBackoff:    time.Second,
		NovaMaxBackoff:    5 * time.Minute,
		NovaPollInterval:  2 * time.Second,
		NovaGiveUpAfter:   24 * time.Hour,
		NovaRetention:     7 * 24 * time.Hour,

		AgentCertTTL:           time.Hour,
		AgentTokenTTL:          2 * time.Hour,
		AgentResumeTimeout:     60 * time.Second,
		AgentHeartbeatInterval: 30 * time.Second,

		BootKernel:    "initramfs/out/vmlinuz",
		BootInitramfs: "initramfs/out/initramfs.cpio.gz",
	}
}

// Load builds the configuration from args (without the program name) and the environment.
// A "-config FILE" flag or FERRUM_CONFIG names the YAML file. Usage goes to out.
func Load(args []string, getenv func(string) string, out io.Writer) (*Config, error) {
	c := Defaults()
	file := getenv("FERRUM_CONFIG")
	// The config file must be read before flags override it: find -config first.
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "config" && strings.HasPrefix(a, "-") {
			if hasVal {
				file = val
			} else if i+1 < len(args) {
				file = args[i+1]
			}
		}
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config: %s: %w", file, err)
		}
	}
	if err := fromEnv(&c, getenv); err != nil {
		return nil, err
	}
	fs := flag.NewFlagSet("ferrum-controller", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.String("config", file, "YAML configuration file (also FERRUM_CONFIG)")
	bindFlags(fs, &c)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("config: unexpected argument %q", fs.Arg(0))
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// fields walks the settings: yaml name, help and a pointer to each.
func fields(c *Config, f func(name, help string, p any)) {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f(t.Field(i).Tag.Get("yaml"), t.Field(i).Tag.Get("help"), v.Field(i).Addr().Interface())
	}
}

func envName(name string) string { return "FERRUM_" + strings.ToUpper(name) }

func fromEnv(c *Config, getenv func(string) string) error {
	var err error
	fields(c, func(name, _ string, p any) {
		s := getenv(envName(name))
		if s == "" || err != nil {
			return
		}
		if e := set(p, s); e != nil {
			err = fmt.Errorf("config: %s=%q: %w", envName(name), s, e)
		}
	})
	return err
}

func set(p any, s string) error {
	switch p := p.(type) {
	case *string:
		*p = s
	case *bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		*p = b
	case *int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		*p = n
	case *int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		*p = n
	case *time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*p = d
	default:
		return fmt.Errorf("unsupported setting type %T", p)
	}
	return nil
}

func bindFlags(fs *flag.FlagSet, c *Config) {
	fields(c, func(name, help string, p any) {
		fl := strings.ReplaceAll(name, "_", "-")
		help += " (env " + envName(name) + ")"
		switch p := p.(type) {
		case *string:
			fs.StringVar(p, fl, *p, help)
		case *bool:
			fs.BoolVar(p, fl, *p, help)
		case *int:
			fs.IntVar(p, fl, *p, help)
		case *int64:
			fs.Int64Var(p, fl, *p, help)
		case *time.Duration:
			fs.DurationVar(p, fl, *p, help)
		}
	})
}

func (c *Config) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.APIAddr); err != nil {
		errs = append(errs, fmt.Errorf("api_addr %q: %w", c.APIAddr, err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir must not be empty"))
	}
	if c.Database == "" {
		c.Database = filepath.Join(c.DataDir, "ferrum.db")
	}
	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		c.Hostname = h
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "json", "console", "auto":
	default:
		errs = append(errs, fmt.Errorf("log_format %q: want json, console or auto", c.LogFormat))
	}
	switch c.Auth {
	case "noauth":
	case "http_basic":
		if c.HtpasswdFile == "" {
			errs = append(errs, errors.New("auth http_basic needs htpasswd_file"))
		}
	default:
		errs = append(errs, fmt.Errorf("auth %q: want noauth or http_basic", c.Auth))
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		errs = append(errs, errors.New("tls_cert_file and tls_key_file go together"))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("workers %d: want at least 1", c.Workers))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("max_body_bytes %d: want at least 1024", c.MaxBodyBytes))
	}
	if c.LockRetries < 0 {
		errs = append(errs, fmt.Errorf("lock_retries %d: must not be negative", c.LockRetries))
	}
	for name, v := range map[string]int{"power_sync_workers": c.PowerSyncWorkers,
		"power_sync_slow_workers": c.PowerSyncSlowWorkers, "ipmi_attempts": c.IPMIAttempts,
		"ipmi_failure_threshold": c.IPMIFailureThreshold} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s %d: want at least 1", name, v))
		}
	}
	if c.PowerStateSyncMaxRetries < 0 {
		errs = append(errs, fmt.Errorf("power_state_sync_max_retries %d: must not be negative", c.PowerStateSyncMaxRetries))
	}
	for name, d := range map[string]time.Duration{"power_sync_interval": c.PowerSyncInterval,
		"power_failure_recovery_interval": c.PowerFailureRecoveryInterval} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must not be negative (0 disables)", name, d))
		}
	}
	if c.EraseDevicesPriority < -1 || c.EraseDevicesMetadataPriority < -1 {
		errs = append(errs, fmt.Errorf("erase_devices_priority and erase_devices_metadata_priority: want -1 (the agent's), 0 (skip) or a priority"))
	}
	switch c.NovaInterface {
	case "", "public", "internal", "admin":
	default:
		errs = append(errs, fmt.Errorf("nova_interface %q: want public, internal or admin", c.NovaInterface))
	}
	if c.NovaBatchSize < 1 {
		errs = append(errs, fmt.Errorf("nova_batch_size %d: want at least 1", c.NovaBatchSize))
	}
	for name, d := range map[string]time.Duration{"nova_min_backoff": c.NovaMinBackoff, "nova_max_backoff": c.NovaMaxBackoff,
		"nova_poll_interval": c.NovaPollInterval, "nova_give_up_after": c.NovaGiveUpAfter, "nova_event_retention": c.NovaRetention} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s %s: must be positive", name, d))
		}
	}
	if c.NovaMaxBackoff < c.NovaMinBackoff {
		errs = append(errs, fmt.Errorf("nova_max_backoff %s is below nova_min_backoff %s", c.NovaMaxBackoff, c.NovaMinBackoff))
	}
	if c.DefaultBootMode != "uefi" && c.DefaultBootMode != "bios" {
		errs = append(errs, fmt.Errorf("default_boot_mode %q: want uefi or bios", c.DefaultBootMode))
	}
	for name, d := range map[string]time.Duration{"lock_timeout": c.LockTimeout,
		"check_interval": c.CheckInterval, "deploy_callback_timeout": c.DeployCallbackTimeout,
		"clean_callback_timeout": c.CleanCallbackTimeout, "inspect_wait_timeout": c.InspectWaitTimeout,
		"rescue_callback_timeout": c.RescueCallbackTimeout, "shutdown_timeout": c.ShutdownTimeout,
		"heartbeat_interval": c.HeartbeatInterval, "heartbeat_timeout": c.HeartbeatTimeout,
		"power_state_change_timeout": c.PowerStateChangeTimeout, "soft_power_off_timeout": c.SoftPowerOffTimeout,
		"ipmi_timeout": c.IPMITimeout, "ipmi_call_timeout": c.IPMICallTimeout, "ipmi_probe_interval": c.IPMIProbeInterval} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s %s: must be positive", name, d))
		}
	}
	if c.HeartbeatInterval > 0 && c.HeartbeatTimeout <= c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("heartbeat_timeout %s: must be longer than heartbeat_interval %s", c.HeartbeatTimeout, c.HeartbeatInterval))
	}
	if strings.Contains(c.Database, "://") && c.PostgresDSN() == "" {
		errs = append(errs, errors.New("database: a URL must be postgres://… or postgresql://…; a SQLite database is a file path"))
	}
	errs = append(errs, c.validateAgents()...)
	errs = append(errs, c.validateBoot()...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// validateAgents checks the agent link settings and fills their derived defaults.
func (c *Config) validateAgents() []error {
	var errs []error
	if c.PKIDir == "" {
		c.PKIDir = filepath.Join(c.DataDir, "pki")
	}
	if c.AgentAdvertiseAddr == "" && c.AgentAddr != "" {
		// Agents cannot dial 0.0.0.0: advertise the host name then.
		if h, port, err := net.SplitHostPort(c.AgentAddr); err == nil {
			if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
				c.AgentAdvertiseAddr = net.JoinHostPort(c.Hostname, port)
			}
		}
	}
	for name, a := range map[string]string{"agent_addr": c.AgentAddr, "agent_advertise_addr": c.AgentAdvertiseAddr} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", name, a, err))
		}
	}
	for name, d := range map[string]time.Duration{"agent_cert_ttl": c.AgentCertTTL, "agent_token_ttl": c.AgentTokenTTL,
		"agent_resume_timeout": c.AgentResumeTimeout, "agent_heartbeat_interval": c.AgentHeartbeatInterval} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s %s: must be positive", name, d))
		}
	}
	if (c.AgentTLSCertFile == "") != (c.AgentTLSKeyFile == "") {
		errs = append(errs, errors.New("agent_tls_cert_file and agent_tls_key_file go together"))
	}
	if c.CAURL != "" {
		if c.CARootFile == "" || c.CAProvisioner == "" || c.CAProvisionerKeyFile == "" {
			errs = append(errs, errors.New("ca_url needs ca_root_file, ca_provisioner and ca_provisioner_key_file"))
		}
		if c.AgentTLSCertFile == "" {
			errs = append(errs, errors.New("ca_url needs agent_tls_cert_file: agents pin the external CA's root"))
		}
	}
	return errs
}

// validateBoot checks the boot server's settings and fills the advertised address.
func (c *Config) validateBoot() []error {
	var errs []error
	if c.BootAddr == "" {
		if c.BootTFTPAddr != "" {
			errs = append(errs, errors.New("boot_tftp_addr needs boot_addr: its chain script points there"))
		}
		return errs
	}
	if c.AgentAddr == "" {
		errs = append(errs, errors.New("boot_addr needs agent_addr: the ramdisk's agent dials it"))
	}
	if c.BootAdvertiseAddr == "" {
		c.BootAdvertiseAddr = c.BootAddr
		if h, port, err := net.SplitHostPort(c.BootAddr); err == nil {
			if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
				c.BootAdvertiseAddr = net.JoinHostPort(c.Hostname, port)
			}
		}
	}
	for name, a := range map[string]string{"boot_addr": c.BootAddr, "boot_advertise_addr": c.BootAdvertiseAddr,
		"boot_tftp_addr": c.BootTFTPAddr} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", name, a, err))
		}
	}
	if h, _, err := net.SplitHostPort(c.BootAdvertiseAddr); err == nil {
		if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
			errs = append(errs, fmt.Errorf("boot_advertise_addr %q: machines cannot fetch from it", c.BootAdvertiseAddr))
		}
	}
	if c.BootKernel == "" || c.BootInitramfs == "" {
		errs = append(errs, errors.New("boot_kernel and boot_initramfs must not be empty"))
	}
	for _, r := range c.BootKernelArgs {
		if r < ' ' || r == 0x7f || r == '$' || r > 0x7e {
			errs = append(errs, fmt.Errorf("boot_kernel_args: character %q not allowed (printable ASCII without '$')", r))
			break
		}
	}
	return errs
}

// PostgresDSN is Database when it names a PostgreSQL database (a postgres:// or
// postgresql:// URL), else "" (a SQLite file).
func (c *Config) PostgresDSN() string {
	if strings.HasPrefix(c.Database, "postgres://") || strings.HasPrefix(c.Database, "postgresql://") {
		return c.Database
	}
	return ""
}

// DatabaseForLog is Database with a URL's password masked.
func (c *Config) DatabaseForLog() string {
	if c.PostgresDSN() == "" {
		return c.Database
	}
	u, err := url.Parse(c.Database)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	return u.Redacted()
}
