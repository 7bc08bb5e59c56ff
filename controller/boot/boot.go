// Package boot is the controller's network-boot server: per-node iPXE scripts rendered on
// request, the agent ramdisk's kernel and initramfs over HTTP, and (tftp.go) an optional
// read-only TFTP server for the first hop of a PXE boot.
//
// A machine's iPXE asks for /boot/ipxe?mac=MAC. The MAC is looked up among the ports; when its
// node's provision state expects an agent, the script boots the ramdisk with a freshly minted
// enrollment token on the kernel command line. Anything else gets a script that exits to the
// next boot device: a boot server must never stop a machine's boot with an error page.
//
// It is an adapter: it imports node only, and reaches the conductor and the store through the
// small interfaces below. Only controller/cmd wires it.
package boot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/node"
)

// The URL layout, relative to the advertised address (docs/boot.md).
const (
	// ScriptPath is the per-node iPXE script: GET ScriptPath?mac=MAC.
	ScriptPath = "/boot/ipxe"
	// ChainPath is the fixed chain script (also served over TFTP as ChainName).
	ChainPath = "/boot/boot.ipxe"
	// ChainName is the chain script's TFTP file name.
	ChainName = "boot.ipxe"
	// KernelName and InitrdName are the ramdisk's files, under /boot/ (anonymous) and
	// /boot/nodes/{uuid}/ (recorded in the node's boot path).
	KernelName = "vmlinuz"
	InitrdName = "initramfs.cpio.gz"
)

// Nodes finds nodes and ports; the conductor implements it.
type Nodes interface {
	ListPorts(ctx context.Context, q node.PortQuery) ([]*node.Port, error)
	GetNode(ctx context.Context, ident string) (*node.Node, error)
}

// Links records the boot path in nodes' agent links; the store implements it.
type Links interface {
	UpdateAgentLinks(ctx context.Context, links []node.AgentLink) error
}

// Config configures a Server.
type Config struct {
	// Nodes looks up the port of a MAC and its node. Required.
	Nodes Nodes
	// Params returns the agent's kernel parameters for a node and mints its one-time
	// enrollment token (conductor.AgentBootParams). Its result is a secret. Required.
	Params func(ctx context.Context, nodeUUID string) (string, error)
	// Links records script, kernel and initramfs fetches; nil records nothing.
	Links Links
	// AdvertiseAddr is HOST:PORT of this server as machines reach it; it goes into the
	// scripts' URLs. Required.
	AdvertiseAddr string
	// Kernel and Initrd are the ramdisk's files, opened per request (a rebuilt ramdisk needs no
	// restart). Required.
	Kernel, Initrd string
	// KernelArgs are added to every ramdisk kernel command line (console=ttyS0,115200, …).
	KernelArgs string
	// Timeout bounds the lookups, token minting and recording of one request [10s].
	Timeout time.Duration
	Log     zerolog.Logger
	Now     func() time.Time
}

// Stats counts what the server answered since it started.
type Stats struct {
	// Scripts that boot the agent; exits for an unknown MAC, for a node that expects no
	// agent, and because something failed (lookup or token).
	Agent, UnknownMAC, NoAgent, Failed uint64
	// Kernel and initramfs requests answered with their file.
	Kernels, Initrds uint64
}

// Server renders scripts and serves the ramdisk. It owns no goroutines.
type Server struct {
	cfg     Config
	log     zerolog.Logger
	handler http.Handler

	agent, unknown, noAgent, failed, kernels, initrds atomic.Uint64
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	var errs []error
	if cfg.Nodes == nil {
		errs = append(errs, errors.New("Nodes is required"))
	}
	if cfg.Params == nil {
		errs = append(errs, errors.New("Params is required"))
	}
	if h, _, err := net.SplitHostPort(cfg.AdvertiseAddr); err != nil || h == "" {
		errs = append(errs, fmt.Errorf("AdvertiseAddr %q: want HOST:PORT", cfg.AdvertiseAddr))
	} else if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
		errs = append(errs, fmt.Errorf("AdvertiseAddr %q: machines cannot reach an unspecified address", cfg.AdvertiseAddr))
	}
	if cfg.Kernel == "" || cfg.Initrd == "" {
		errs = append(errs, errors.New("Kernel and Initrd are required"))
	}
	if err := CheckKernelArgs(cfg.KernelArgs); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Log.With().Str("component", "boot").Logger()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+ScriptPath, s.script)
	mux.HandleFunc("GET "+ChainPath, s.chain)
	mux.HandleFunc("GET /boot/"+KernelName, s.file(KernelName))
	mux.HandleFunc("GET /boot/"+InitrdName, s.file(InitrdName))
	mux.HandleFunc("GET /boot/nodes/{uuid}/"+KernelName, s.file(KernelName))
	mux.HandleFunc("GET /boot/nodes/{uuid}/"+InitrdName, s.file(InitrdName))
	s.handler = mux
	return s, nil
}

// CheckKernelArgs refuses extra kernel arguments that would break or alter the script: control
// characters (a newline would start a new iPXE command) and '$' (iPXE expands settings).
func CheckKernelArgs(args string) error {
	for _, r := range args {
		if r < ' ' || r == 0x7f || r == '$' || r > 0x7e {
			return fmt.Errorf("kernel args: character %q not allowed (printable ASCII without '$')", r)
		}
	}
	return nil
}

// Handler serves the URL layout; it is meant for its own listener, without the API's
// authentication (machines cannot authenticate).
func (s *Server) Handler() http.Handler { return s.handler }

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{Agent: s.agent.Load(), UnknownMAC: s.unknown.Load(), NoAgent: s.noAgent.Load(),
		Failed: s.failed.Load(), Kernels: s.kernels.Load(), Initrds: s.initrds.Load()}
}

// ChainScript is the fixed script a PXE client's iPXE fetches first (over TFTP or HTTP): it
// chains to the node's own script, named by the MAC iPXE booted from. ${netX/mac} is the MAC of
// the interface that configured itself last — the one that booted, also on a machine whose
// iPXE sees several NICs, where net0 may be another.
func (s *Server) ChainScript() []byte {
	return []byte("#!ipxe\nchain http://" + s.cfg.AdvertiseAddr + ScriptPath + "?mac=${netX/mac}\n")
}

// exitScript makes iPXE return to the firmware, which tries the next boot device.
const exitScript = "#!ipxe\nexit\n"

func (s *Server) chain(w http.ResponseWriter, r *http.Request) {
	writeScript(w, s.ChainScript())
}

func writeScript(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.Write(b)
}

// badRequest answers a malformed request (never one iPXE's own chain would send).
func badRequest(w http.ResponseWriter, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, msg, http.StatusBadRequest)
}

// ParseMAC reads an Ethernet MAC in any of the forms iPXE prints (52:54:00:12:34:56,
// 52-54-00-12-34-56, upper or lower case) and returns it lower case with colons.
func ParseMAC(s string) (string, error) {
	if len(s) != 17 {
		return "", fmt.Errorf("mac %q: want 6 bytes as aa:bb:cc:dd:ee:ff", s)
	}
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return "", fmt.Errorf("mac %q: want 6 bytes as aa:bb:cc:dd:ee:ff", s)
	}
	return hw.String(), nil
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// clientAddr is the request's remote IP, without the port.
func clientAddr(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

func (s *Server) script(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	macs := q["mac"]
	if len(macs) != 1 {
		badRequest(w, "boot: want exactly one mac query parameter: "+ScriptPath+"?mac=aa:bb:cc:dd:ee:ff")
		return
	}
	mac, err := ParseMAC(macs[0])
	if err != nil {
		badRequest(w, "boot: "+err.Error())
		return
	}
	if r.Method == http.MethodHead {
		// No side effects: only a GET mints a token and is recorded.
		writeScript(w, nil)
		return
	}
	client := clientAddr(r)
	log := s.log.With().Str("mac", mac).Str("client", client).Logger()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.Timeout)
	defer cancel()

	ports, err := s.cfg.Nodes.ListPorts(ctx, node.PortQuery{Address: mac, Page: node.Page{Limit: 1}})
	if err != nil {
		s.failed.Add(1)
		log.Error().Err(err).Msg("boot script: port lookup failed; the machine goes to its next boot device")
		writeScript(w, []byte(exitScript))
		return
	}
	if len(ports) == 0 {
		s.unknown.Add(1)
		log.Info().Msg("boot script: no port has this MAC; the machine goes to its next boot device")
		writeScript(w, []byte(exitScript))
		return
	}
	id := ports[0].NodeUUID
	log = log.With().Str("node_id", id).Logger()
	n, err := s.cfg.Nodes.GetNode(ctx, id)
	if err != nil {
		s.failed.Add(1)
		log.Error().Err(err).Msg("boot script: node lookup failed; the machine goes to its next boot device")
		writeScript(w, []byte(exitScript))
		return
	}
	if !n.ProvisionState.ExpectsAgent() {
		s.noAgent.Add(1)
		log.Info().Str("provision_state", string(n.ProvisionState)).
			Msg("boot script: the node expects no agent; the machine goes to its next boot device")
		writeScript(w, []byte(exitScript))
		return
	}
	params, err := s.cfg.Params(ctx, n.UUID)
	if err == nil {
		err = CheckKernelArgs(params)
	}
	if err != nil {
		s.failed.Add(1)
		log.Error().Err(err).Msg("boot script: agent parameters failed; the machine goes to its next boot device")
		writeScript(w, []byte(exitScript))
		return
	}
	s.record(ctx, log, node.AgentLink{NodeUUID: n.UUID, ScriptFetchedAt: s.cfg.Now().UTC(), BootClientAddr: client, BootMAC: mac})
	s.agent.Add(1)
	log.Info().Str("provision_state", string(n.ProvisionState)).Msg("boot script: booting the agent ramdisk")
	writeScript(w, []byte(s.render(n.UUID, mac, params)))
}

// render is the agent boot script. params holds the enrollment token: it goes to the machine
// only, never to a log.
func (s *Server) render(uuid, mac, params string) string {
	base := "http://" + s.cfg.AdvertiseAddr + "/boot/nodes/" + uuid + "/"
	args := []string{"initrd=" + InitrdName}
	if s.cfg.KernelArgs != "" {
		args = append(args, strings.Fields(s.cfg.KernelArgs)...)
	}
	args = append(args, "BOOTIF=01-"+strings.ReplaceAll(mac, ":", "-"), "ferrum.node="+uuid, params)
	return "#!ipxe\n" +
		"kernel " + base + KernelName + " " + strings.Join(args, " ") + "\n" +
		"initrd " + base + InitrdName + "\n" +
		"boot\n"
}

// file serves the kernel or initramfs; under /boot/nodes/{uuid}/ the fetch is recorded in the
// node's boot path (HEAD and partial requests are not: only a full GET is a boot).
func (s *Server) file(name string) http.HandlerFunc {
	path, counter := s.cfg.Kernel, &s.kernels
	if name == InitrdName {
		path, counter = s.cfg.Initrd, &s.initrds
	}
	return func(w http.ResponseWriter, r *http.Request) {
		uuid := r.PathValue("uuid")
		if uuid != "" && !uuidRE.MatchString(uuid) {
			http.Error(w, fmt.Sprintf("boot: %q is not a node UUID", uuid), http.StatusNotFound)
			return
		}
		if r.URL.RawQuery != "" {
			badRequest(w, "boot: "+name+" takes no query parameters")
			return
		}
		f, err := os.Open(path)
		if err != nil {
			s.log.Error().Err(err).Str("file", path).Msg("boot: ramdisk file missing (make initramfs builds it)")
			http.Error(w, "boot: "+name+" is not available on this controller", http.StatusNotFound)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			s.log.Error().Err(err).Str("file", path).Msg("boot: ramdisk file unreadable")
			http.Error(w, "boot: "+name+" is not available on this controller", http.StatusNotFound)
			return
		}
		if uuid != "" && r.Method == http.MethodGet && r.Header.Get("Range") == "" {
			u := node.AgentLink{NodeUUID: strings.ToLower(uuid), BootClientAddr: clientAddr(r)}
			if name == KernelName {
				u.KernelFetchedAt = s.cfg.Now().UTC()
			} else {
				u.InitrdFetchedAt = s.cfg.Now().UTC()
			}
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.cfg.Timeout)
			s.record(ctx, s.log.With().Str("node_id", u.NodeUUID).Logger(), u)
			cancel()
			s.log.Info().Str("node_id", u.NodeUUID).Str("client", u.BootClientAddr).Str("file", name).
				Int64("bytes", st.Size()).Msg("boot: serving the ramdisk")
		}
		counter.Add(1)
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, name, st.ModTime(), f)
	}
}

// record writes a boot-path update; a failure is logged, never fatal to the boot.
func (s *Server) record(ctx context.Context, log zerolog.Logger, u node.AgentLink) {
	if s.cfg.Links == nil {
		return
	}
	if err := s.cfg.Links.UpdateAgentLinks(ctx, []node.AgentLink{u}); err != nil {
		log.Warn().Err(err).Msg("boot: recording the boot path failed")
	}
}
