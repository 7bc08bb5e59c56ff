package main

import (
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/agent/bios"
	"github.com/ferrumhq/ferrum/agent/clean"
	"github.com/ferrumhq/ferrum/agent/configdrive"
	"github.com/ferrumhq/ferrum/agent/raid"
	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/shared/proto"
)

// registerMachine registers the config drive, software RAID, BIOS and disk erasure commands.
// Their disks come from blockdev (the packages' defaults).
func registerMachine(r *runner.Runner, log zerolog.Logger) {
	cl, err := clean.New(clean.Config{Log: log, SecureErasers: []clean.SecureEraser{clean.NVMeFormat{}}})
	if err != nil {
		panic(err) // the defaults are valid
	}
	r.Register(proto.CmdGetCleanSteps, runner.HandlerFunc(cl.RunGetCleanSteps), false)
	r.Register(proto.CmdEraseDevicesMetadata, runner.HandlerFunc(cl.RunEraseDevicesMetadata), true)
	r.Register(proto.CmdEraseDevices, runner.HandlerFunc(cl.RunEraseDevices), true)

	rd, err := raid.New(raid.Config{Log: log, Wiper: cl})
	if err != nil {
		panic(err)
	}
	r.Register(proto.CmdCreateRAID, runner.HandlerFunc(rd.RunCreate), true)
	r.Register(proto.CmdDeleteRAID, runner.HandlerFunc(rd.RunDelete), true)
	r.Register(proto.CmdGetRAID, runner.HandlerFunc(rd.RunGet), false)

	cd, err := configdrive.New(configdrive.Config{Log: log})
	if err != nil {
		panic(err)
	}
	r.Register(proto.CmdWriteConfigDrive, runner.HandlerFunc(cd.RunWrite), true)

	b, err := bios.New(bios.Config{Log: log})
	if err != nil {
		panic(err)
	}
	r.Register(proto.CmdGetBIOSSettings, runner.HandlerFunc(b.RunGet), false)
	r.Register(proto.CmdApplyBIOSSettings, runner.HandlerFunc(b.RunApply), true)
	r.Register(proto.CmdFactoryResetBIOS, runner.HandlerFunc(b.RunFactoryReset), true)
}
