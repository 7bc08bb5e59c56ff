// Package agentdeploy is the agent-driven part of a node's driver: the deploy interface
// "direct", inspect "agent", RAID "agent" and BIOS "agent", and cleaning. It boots the node
// into the ramdisk through the node's own power and management interfaces, lets the node wait
// for its agent (the conductor resumes it when the agent dials in), then runs the agent's
// commands through the conductor's Agents port: inspect, write_image, write_configdrive,
// erase_devices(_metadata), create_raid/delete_raid, apply_bios_settings/factory_reset_bios.
// A node whose agent is already connected skips the boot (fast track).
//
// Hardware types plug it in (ipmi's HardwareConfig.Others); it imports the conductor's
// ports and shared/proto, never another adapter.
package agentdeploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/controller/conductor"
	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// Config configures a Deployer.
type Config struct {
	Agents conductor.Agents
	Log    zerolog.Logger
	// StatusTimeout bounds the get_status that tells whether a node's agent is there [10s].
	StatusTimeout time.Duration
	// EraseDevicesPriority overrides erase_devices' priority in automated cleaning (Ironic's
	// [deploy]erase_devices_priority); nil keeps the agent's (10), 0 skips it.
	EraseDevicesPriority *int
	// EraseDevicesMetadataPriority is the same for erase_devices_metadata (agent's: 99).
	EraseDevicesMetadataPriority *int
	// ProgressEvery is how often write progress is saved on the node [2s].
	ProgressEvery time.Duration
	Now           func() time.Time
}

// Deployer builds the agent-driven interfaces of nodes.
type Deployer struct{ cfg Config }

// New validates cfg.
func New(cfg Config) (*Deployer, error) {
	if cfg.Agents == nil {
		return nil, errors.New("agentdeploy: Config.Agents is required")
	}
	if cfg.StatusTimeout <= 0 {
		cfg.StatusTimeout = 10 * time.Second
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Log = cfg.Log.With().Str("component", "agentdeploy").Logger()
	return &Deployer{cfg: cfg}, nil
}

// Fill sets the agent-driven interfaces n asks for on d, whose Power and Management must be
// set: Deploy for deploy_interface direct, Inspect for inspect_interface agent, Raid and Bios
// validators for agent.
func (a *Deployer) Fill(n *node.Node, d *conductor.Driver) {
	b := &bound{a: a, power: d.Power, mgmt: d.Management}
	if n.Iface("deploy") == "direct" {
		d.Deploy = b
	}
	if n.Iface("inspect") == "agent" {
		d.Inspect = inspector{b}
	}
	if n.Iface("raid") == "agent" {
		d.Raid = b
	}
	if n.Iface("bios") == "agent" {
		d.Bios = b
	}
}

// bound is the agent-driven interfaces of one node's driver.
type bound struct {
	a     *Deployer
	power conductor.Power
	mgmt  conductor.Management
}

// Validate checks what booting the agent needs.
func (b *bound) Validate(ctx context.Context, n *node.Node) error {
	if b.power == nil || b.mgmt == nil {
		return errors.New("the agent deploy needs a power and a management interface")
	}
	if err := b.power.Validate(ctx, n); err != nil {
		return err
	}
	return b.mgmt.Validate(ctx, n)
}

// connected asks the node's agent for its status; false when no agent answers.
func (b *bound) connected(ctx context.Context, n *node.Node) bool {
	ctx, cancel := context.WithTimeout(ctx, b.a.cfg.StatusTimeout)
	defer cancel()
	res, err := b.a.cfg.Agents.Run(ctx, n.UUID, proto.Command{Name: proto.CmdGetStatus}, nil)
	return err == nil && res.Error == nil
}

// bootAgent network-boots the node into the ramdisk: boot device pxe (once), then power on or
// reboot. The node then waits for its agent.
func (b *bound) bootAgent(ctx context.Context, n *node.Node, why string) (conductor.Outcome, error) {
	if err := b.mgmt.SetBootDevice(ctx, n, "pxe", false); err != nil {
		return 0, fmt.Errorf("setting boot device pxe to boot the agent: %w", err)
	}
	target := node.Rebooting
	if st, err := b.power.PowerState(ctx, n); err == nil && st == node.PowerOff {
		target = node.PowerOn
	}
	if err := b.power.SetPowerState(ctx, n, target, 0); err != nil {
		return 0, fmt.Errorf("%s to boot the agent: %w", target, err)
	}
	if target == node.PowerOn {
		n.PowerState = node.PowerOn
	}
	n.DriverInternalInfo["agent_boot_requested_at"] = b.a.cfg.Now().UTC().Format(time.RFC3339)
	b.a.cfg.Log.Info().Str("node_id", n.UUID).Str("for", why).Msg("booting the agent ramdisk")
	return conductor.Wait, nil
}

// run sends one command and waits for its result, decoding it into out (may be nil).
func (b *bound) run(ctx context.Context, n *node.Node, name string, args any, out any, progress func(proto.Progress)) error {
	raw, err := proto.Args(args)
	if err != nil {
		return err
	}
	res, err := b.a.cfg.Agents.Run(ctx, n.UUID, proto.Command{Name: name, Args: raw}, progress)
	if err != nil {
		return fmt.Errorf("agent command %s: %w", name, err)
	}
	if res.Error != nil {
		return fmt.Errorf("agent command %s failed: %w", name, res.Error)
	}
	if out != nil && len(res.Data) > 0 {
		if err := json.Unmarshal(res.Data, out); err != nil {
			return fmt.Errorf("agent command %s: undecodable result: %w", name, err)
		}
	}
	return nil
}

// powerOff ends an agent session by powering the node off (after inspection and cleaning).
func (b *bound) powerOff(ctx context.Context, n *node.Node) error {
	if err := b.power.SetPowerState(ctx, n, node.PowerOff, 0); err != nil {
		return fmt.Errorf("powering off after the agent finished: %w", err)
	}
	n.PowerState = node.PowerOff
	return nil
}

// Deploy writes the instance image and config drive, makes the node boot from disk and
// reboots it: Ironic's deploy steps write_image (80), write_configdrive (70),
// prepare_instance_boot (60) and tear_down_agent/reboot (40).
func (b *bound) Deploy(ctx context.Context, n *node.Node) (conductor.Outcome, error) {
	args, err := imageArgs(n)
	if err != nil {
		return 0, err
	}
	if !b.connected(ctx, n) {
		return b.bootAgent(ctx, n, "deploy")
	}
	step := func(name string, prio int) {
		n.DeployStep = node.Step{"interface": "deploy", "step": name, "priority": prio, "args": map[string]any{}}
		if err := conductor.Checkpoint(ctx, n); err != nil {
			b.a.cfg.Log.Warn().Str("node_id", n.UUID).Err(err).Msg("saving the deploy step failed")
		}
	}
	step("write_image", 80)
	var res proto.WriteImageResult
	last := time.Time{}
	err = b.run(ctx, n, proto.CmdWriteImage, args, &res, func(p proto.Progress) {
		var wp proto.WriteImageProgress
		if json.Unmarshal(p.Data, &wp) != nil {
			return
		}
		n.DriverInternalInfo["deploy_progress"] = map[string]any{"bytes": wp.Bytes, "total": wp.Total,
			"percent": wp.Percent, "bytes_per_sec": wp.BytesPerSec}
		if now := b.a.cfg.Now(); now.Sub(last) >= b.a.cfg.ProgressEvery {
			last = now
			conductor.Checkpoint(ctx, n)
		}
	})
	if err != nil {
		return 0, err
	}
	n.DriverInternalInfo["root_device"] = map[string]any{"path": res.Target, "reason": res.Reason}
	n.DriverInternalInfo["deploy_progress"] = map[string]any{"bytes": res.DownloadBytes, "total": res.DownloadBytes,
		"percent": 100, "written_bytes": res.WrittenBytes, "duration_ms": res.DurationMs}
	b.a.cfg.Log.Info().Str("node_id", n.UUID).Str("target", res.Target).Str("reason", res.Reason).
		Int64("bytes", res.DownloadBytes).Int64("ms", res.DurationMs).Msg("image written")

	if cd, ok := n.InstanceInfo["configdrive"]; ok && cd != nil {
		step("write_configdrive", 70)
		raw, err := json.Marshal(cd)
		if err != nil {
			return 0, fmt.Errorf("configdrive: %w", err)
		}
		raw, err = completeConfigDrive(raw, n)
		if err != nil {
			return 0, err
		}
		var cres proto.ConfigDriveResult
		if err := b.run(ctx, n, proto.CmdWriteConfigDrive, proto.ConfigDriveArgs{Device: res.Target, ConfigDrive: raw}, &cres, nil); err != nil {
			return 0, err
		}
		n.DriverInternalInfo["configdrive_partition"] = cres.Partition
	}
	step("prepare_instance_boot", 60)
	if err := b.mgmt.SetBootDevice(ctx, n, "disk", true); err != nil {
		return 0, fmt.Errorf("setting boot device disk: %w", err)
	}
	step("reboot", 40)
	if err := b.power.SetPowerState(ctx, n, node.Rebooting, 0); err != nil {
		return 0, fmt.Errorf("rebooting into the instance: %w", err)
	}
	n.PowerState = node.PowerOn
	delete(n.DriverInternalInfo, "agent_boot_requested_at")
	return conductor.Done, nil
}

// imageArgs builds write_image's arguments from instance_info (Ironic's names) and the node's
// root device hints.
func imageArgs(n *node.Node) (*proto.WriteImageArgs, error) {
	ii := n.InstanceInfo
	get := func(k string) string {
		s, _ := ii[k].(string)
		return s
	}
	src := get("image_source")
	if src == "" {
		return nil, errors.New("instance_info.image_source is required (an http(s) URL of the image)")
	}
	args := &proto.WriteImageArgs{ID: src, URLs: []string{src}, DiskFormat: get("image_disk_format"),
		OSHashAlgo: get("image_os_hash_algo"), OSHashValue: get("image_os_hash_value"), Compression: get("image_compression")}
	if args.DiskFormat == "" {
		args.DiskFormat = proto.DiskFormatRaw
	}
	if args.OSHashAlgo == "" && args.OSHashValue == "" {
		// Ironic's image_checksum: "algo:hex" or a bare md5 (refused: md5 is not accepted).
		if c := get("image_checksum"); c != "" {
			algo, value, ok := strings.Cut(c, ":")
			if !ok {
				return nil, errors.New("instance_info.image_checksum is a bare md5; give image_os_hash_algo and image_os_hash_value (sha256 or sha512)")
			}
			args.OSHashAlgo, args.OSHashValue = algo, value
		}
	}
	if ca := get("image_ca_bundle"); ca != "" {
		args.CABundle = ca
	}
	if size, ok := ii["image_size"].(float64); ok {
		args.ImageSize = int64(size)
	}
	if hints, ok := n.Properties["root_device"].(map[string]any); ok {
		args.RootDeviceHints = hints
	}
	if t := get("ferrum_target"); t != "" {
		args.Target = t // image builders' and tests' explicit device
	}
	if err := args.Validate(); err != nil {
		return nil, fmt.Errorf("instance_info: %w", err)
	}
	return args, nil
}

// completeConfigDrive fills meta_data's uuid and name from the node in the object form, as
// Ironic's build_configdrive does.
func completeConfigDrive(raw json.RawMessage, n *node.Node) (json.RawMessage, error) {
	var obj map[string]any
	if json.Unmarshal(raw, &obj) != nil {
		return raw, nil // the string form: an ISO
	}
	md, _ := obj["meta_data"].(map[string]any)
	if md == nil {
		md = map[string]any{}
	}
	if _, ok := md["uuid"]; !ok {
		md["uuid"] = n.UUID
	}
	if _, ok := md["name"]; !ok && n.Name != "" {
		md["name"] = n.Name
	}
	obj["meta_data"] = md
	return json.Marshal(obj)
}

// TearDown powers the node off; cleaning follows.
func (b *bound) TearDown(ctx context.Context, n *node.Node) error {
	return b.powerOff(ctx, n)
}

// Adopt accepts the node as it is.
func (b *bound) Adopt(context.Context, *node.Node) error { return nil }

// Clean runs automated cleaning (steps nil: the agent's steps with a priority, highest first)
// or the given manual steps, then powers the node off.
func (b *bound) Clean(ctx context.Context, n *node.Node, steps []node.Step) (conductor.Outcome, error) {
	plan, err := b.cleanPlan(steps)
	if err != nil {
		return 0, err
	}
	if len(plan) == 0 {
		return conductor.Done, nil
	}
	if !b.connected(ctx, n) {
		return b.bootAgent(ctx, n, "cleaning")
	}
	for _, p := range plan {
		n.CleanStep = node.Step{"interface": p.Interface, "step": p.Step, "priority": p.Priority, "args": p.args}
		conductor.Checkpoint(ctx, n)
		if err := b.cleanStep(ctx, n, p); err != nil {
			return 0, fmt.Errorf("clean step %s.%s: %w", p.Interface, p.Step, err)
		}
	}
	n.CleanStep = node.Step{}
	return conductor.Done, b.powerOff(ctx, n)
}

type plannedStep struct {
	proto.CleanStep
	args map[string]any
}

func (b *bound) cleanPlan(steps []node.Step) ([]plannedStep, error) {
	known := map[string]proto.CleanStep{}
	for _, s := range proto.DefaultCleanSteps() {
		known[s.Interface+"."+s.Step] = s
	}
	if steps == nil { // automated
		var plan []plannedStep
		for _, s := range proto.DefaultCleanSteps() {
			switch {
			case s.Step == "erase_devices" && b.a.cfg.EraseDevicesPriority != nil:
				s.Priority = *b.a.cfg.EraseDevicesPriority
			case s.Step == "erase_devices_metadata" && b.a.cfg.EraseDevicesMetadataPriority != nil:
				s.Priority = *b.a.cfg.EraseDevicesMetadataPriority
			}
			if s.Priority > 0 {
				plan = append(plan, plannedStep{CleanStep: s, args: map[string]any{}})
			}
		}
		sort.SliceStable(plan, func(i, j int) bool { return plan[i].Priority > plan[j].Priority })
		return plan, nil
	}
	plan := make([]plannedStep, 0, len(steps))
	for _, st := range steps {
		iface, _ := st["interface"].(string)
		name, _ := st["step"].(string)
		s, ok := known[iface+"."+name]
		if !ok {
			return nil, fmt.Errorf("no clean step %s.%s (the agent has: %s)", iface, name, stepNames())
		}
		args, _ := st["args"].(map[string]any)
		if args == nil {
			args = map[string]any{}
		}
		plan = append(plan, plannedStep{CleanStep: s, args: args})
	}
	return plan, nil
}

func stepNames() string {
	var out []string
	for _, s := range proto.DefaultCleanSteps() {
		out = append(out, s.Interface+"."+s.Step)
	}
	return strings.Join(out, ", ")
}

func (b *bound) cleanStep(ctx context.Context, n *node.Node, p plannedStep) error {
	switch p.Command {
	case proto.CmdEraseDevicesMetadata, proto.CmdEraseDevices:
		var args proto.EraseArgs
		if len(p.CommandArgs) > 0 { // the step's fixed arguments (erase_devices_express)
			if err := json.Unmarshal(p.CommandArgs, &args); err != nil {
				return fmt.Errorf("arguments: %w", err)
			}
		}
		raw, err := json.Marshal(p.args)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &args); err != nil {
			return fmt.Errorf("arguments: %w", err)
		}
		if err := args.Validate(); err != nil {
			return err
		}
		var res proto.EraseResult
		if err := b.run(ctx, n, p.Command, args, &res, nil); err != nil {
			return err
		}
		n.DriverInternalInfo["last_erase"] = res.Devices
	case proto.CmdCreateRAID:
		if len(n.TargetRaidConfig) == 0 {
			return errors.New("the node has no target_raid_config")
		}
		var args proto.CreateRAIDArgs
		if err := remarshal(map[string]any{"target_raid_config": n.TargetRaidConfig}, &args); err != nil {
			return err
		}
		var st proto.RAIDStatus
		if err := b.run(ctx, n, proto.CmdCreateRAID, args, &st, nil); err != nil {
			return err
		}
		rc := map[string]any{}
		if st.RAIDConfig != nil {
			if err := remarshal(st.RAIDConfig, &rc); err != nil {
				return err
			}
		}
		n.RaidConfig = rc
		if st.RootDevice != "" {
			n.DriverInternalInfo["raid_root_device"] = st.RootDevice
		}
	case proto.CmdDeleteRAID:
		if err := b.run(ctx, n, proto.CmdDeleteRAID, struct{}{}, nil, nil); err != nil {
			return err
		}
		n.RaidConfig = map[string]any{}
	case proto.CmdApplyBIOSSettings:
		var args proto.ApplyBIOSArgs
		if err := remarshal(p.args, &args); err != nil {
			return err
		}
		var st proto.BIOSSettings
		if err := b.run(ctx, n, proto.CmdApplyBIOSSettings, args, &st, nil); err != nil {
			return err
		}
		b.cacheBIOS(n, st)
	case proto.CmdFactoryResetBIOS:
		var st proto.BIOSSettings
		if err := b.run(ctx, n, proto.CmdFactoryResetBIOS, struct{}{}, &st, nil); err != nil {
			return err
		}
		b.cacheBIOS(n, st)
	default:
		return fmt.Errorf("no command for step %s", p.Step)
	}
	return nil
}

// cacheBIOS keeps the firmware's settings on the node for GET /v1/nodes/{node}/bios.
func (b *bound) cacheBIOS(n *node.Node, st proto.BIOSSettings) {
	n.DriverInternalInfo["bios_settings"] = st
	n.DriverInternalInfo["bios_settings_at"] = b.a.cfg.Now().UTC().Format("2006-01-02T15:04:05+00:00")
}

// remarshal converts between JSON-shaped values.
func remarshal(in, out any) error {
	raw, err := json.Marshal(in)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("arguments: %w", err)
	}
	if v, ok := out.(interface{ Validate() error }); ok {
		return v.Validate()
	}
	return nil
}

// inspector is the inspect interface "agent".
type inspector struct{ b *bound }

func (i inspector) Validate(ctx context.Context, n *node.Node) error { return i.b.Validate(ctx, n) }

// Inspect boots the agent, stores its inventory and sets Ironic's properties (cpus,
// memory_mb, local_gb, cpu_arch, boot_mode capability); the conductor creates the ports.
func (i inspector) Inspect(ctx context.Context, n *node.Node) (conductor.Outcome, error) {
	b := i.b
	if !b.connected(ctx, n) {
		return b.bootAgent(ctx, n, "inspection")
	}
	var args proto.InspectArgs
	if hints, ok := n.Properties["root_device"].(map[string]any); ok {
		args.RootDeviceHints = hints // local_gb follows the root disk they choose
	}
	var raw json.RawMessage
	if err := b.run(ctx, n, proto.CmdInspect, args, &raw, nil); err != nil {
		return 0, err
	}
	inv, err := proto.DecodeInventory(raw) // unknown keys of newer agents are kept in raw
	if err != nil {
		return 0, err
	}
	applyInventory(n, inv, raw)
	if n.Iface("bios") == "agent" {
		var st proto.BIOSSettings
		if err := b.run(ctx, n, proto.CmdGetBIOSSettings, struct{}{}, &st, nil); err != nil {
			b.a.cfg.Log.Warn().Str("node_id", n.UUID).Err(err).Msg("reading BIOS settings during inspection failed")
		} else {
			b.cacheBIOS(n, st)
		}
	}
	return conductor.Done, b.powerOff(ctx, n)
}
