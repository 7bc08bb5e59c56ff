package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/agent/runner"
	"github.com/ferrumhq/ferrum/shared/proto"
)

func TestRegisterMachine(t *testing.T) {
	r := runner.New(runner.Config{Log: zerolog.Nop()})
	defer r.Close()
	registerMachine(r, zerolog.Nop())
	names := r.Names()
	for _, c := range []string{proto.CmdWriteConfigDrive, proto.CmdCreateRAID, proto.CmdDeleteRAID, proto.CmdGetRAID,
		proto.CmdGetBIOSSettings, proto.CmdApplyBIOSSettings, proto.CmdFactoryResetBIOS,
		proto.CmdGetCleanSteps, proto.CmdEraseDevicesMetadata, proto.CmdEraseDevices} {
		if !slices.Contains(names, c) {
			t.Errorf("%s not registered (have %v)", c, names)
		}
	}
}

// execJSON runs `ferrum-agent exec NAME ARGS` and returns the printed Result.
func execJSON(t *testing.T, name string, args any) proto.Result {
	t.Helper()
	argv := []string{name}
	if args != nil {
		b, _ := json.Marshal(args)
		argv = append(argv, string(b))
	}
	var stdout, stderr bytes.Buffer
	_ = subcommands["exec"](context.Background(), argv, &stdout, &stderr)
	var res proto.Result
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("exec %v printed %q (stderr %q): %v", argv, stdout.String(), stderr.String(), err)
	}
	return res
}

// TestMachineCommands runs the capabilities through `exec` on a disk image file: a config
// drive goes in, erase_devices_metadata finds and erases it with the partition table.
func TestMachineCommands(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(128 << 20)
	tbl := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true,
		Partitions: []*gpt.Partition{{Index: 1, Start: 2048, End: 20479, Type: gpt.LinuxFilesystem}}}
	w, _ := file.New(f, false).Writable()
	if err := tbl.Write(w, 128<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()

	res := execJSON(t, proto.CmdWriteConfigDrive, proto.ConfigDriveArgs{Device: disk,
		ConfigDrive: json.RawMessage(`{"meta_data":{"uuid":"u-1"},"user_data":"#!/bin/sh\n"}`)})
	var cd proto.ConfigDriveResult
	if res.Error != nil || json.Unmarshal(res.Data, &cd) != nil || cd.PartitionNumber != 2 {
		t.Fatalf("write_configdrive = %+v (%s)", res.Error, res.Data)
	}
	res = execJSON(t, proto.CmdEraseDevicesMetadata, proto.EraseArgs{Devices: []string{disk}})
	var er proto.EraseResult
	if res.Error != nil || json.Unmarshal(res.Data, &er) != nil || len(er.Devices) != 1 ||
		!slices.Contains(er.Devices[0].Signatures, "gpt") || !slices.Contains(er.Devices[0].Signatures, "iso9660") {
		t.Errorf("erase_devices_metadata = %+v (%s), want gpt and the config drive's iso9660 erased", res.Error, res.Data)
	}
	res = execJSON(t, proto.CmdGetCleanSteps, nil)
	var steps proto.CleanSteps
	if res.Error != nil || json.Unmarshal(res.Data, &steps) != nil || len(steps.Steps) != len(proto.DefaultCleanSteps()) {
		t.Errorf("get_clean_steps = %+v (%s)", res.Error, res.Data)
	}
	res = execJSON(t, proto.CmdCreateRAID, map[string]any{"target_raid_config": map[string]any{"logical_disks": []any{}}})
	if res.Error == nil || res.Error.Code != proto.CodeBadRequest {
		t.Errorf("create_raid without logical disks = %+v, want bad_request", res.Error)
	}
}
