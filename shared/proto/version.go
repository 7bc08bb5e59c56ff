// Package proto is the wire protocol between the controller and the ramdisk agent: the messages
// sent on the yamux streams of an agent's tunnel, their framing, the error codes, and the
// protocol version with its history.
//
// Both binaries import it; it imports only the standard library. Messages are append-only: a
// field or message type, once released, keeps its name, JSON key and meaning forever; new ones
// are added with a new Version and, where a peer must know of them, a feature name. Golden
// files under testdata/vN pin the encoding of every message at every version.
package proto

import "slices"

// Version is the protocol version this build speaks. Peers agree on min(theirs, ours) in the
// hello, and refuse each other when that is below the other's MinVersion.
//
// History (append only; never renumber):
//
//	1 (2026-11-22) hello/hello_ack, heartbeat, event, command/ack/progress/result/cancel,
//	               renew_request/renew_response; commands get_status and ping.
//	2 (2026-11-22) get_logs (feature "logs"); hello.pending and resumption of commands after a
//	               dropped link (feature "resume"); result.started_at/finished_at.
//	3 (2026-11-22) the machine capabilities: inspect (feature "inspect"), write_image ("image"),
//	               write_configdrive ("configdrive"), RAID ("raid"), BIOS ("bios"), disk
//	               erasure ("clean"). Their arguments and results live in one file each.
const Version = 3

// MinVersion is the oldest version this build still speaks.
const MinVersion = 1

// Features a peer announces in its hello. A feature is usable when both peers announce it.
const (
	// FeatureRenew: the agent renews its client certificate over the tunnel (renew stream).
	FeatureRenew = "renew"
	// FeatureLogs: the agent answers get_logs.
	FeatureLogs = "logs"
	// FeatureResume: the agent lists its unfinished and undelivered commands in the hello, so
	// a command survives a dropped link.
	FeatureResume = "resume"
	// FeatureInspect: the agent answers inspect with an Ironic-format inventory (inspect.go).
	FeatureInspect = "inspect"
	// FeatureImage: the agent writes images (image.go).
	FeatureImage = "image"
	// FeatureConfigDrive: the agent writes config drives (configdrive.go).
	FeatureConfigDrive = "configdrive"
	// FeatureRAID: the agent builds and deletes software RAID (raid.go).
	FeatureRAID = "raid"
	// FeatureBIOS: the agent reads and applies UEFI/BIOS settings (bios.go).
	FeatureBIOS = "bios"
	// FeatureClean: the agent erases disks (clean.go).
	FeatureClean = "clean"
)

// featuresSince lists, per version, the features that version introduced.
var featuresSince = map[int][]string{
	1: {FeatureRenew},
	2: {FeatureLogs, FeatureResume},
	3: {FeatureInspect, FeatureImage, FeatureConfigDrive, FeatureRAID, FeatureBIOS, FeatureClean},
}

// Features returns every feature of protocol version v (those of v and older), sorted.
func Features(v int) []string {
	var out []string
	for ver, fs := range featuresSince {
		if ver <= v {
			out = append(out, fs...)
		}
	}
	slices.Sort(out)
	return out
}

// Negotiate returns the version two peers speak: the lower of their versions, or 0 when that
// is below either side's minimum.
func Negotiate(ours, ourMin, theirs, theirMin int) int {
	v := min(ours, theirs)
	if v < ourMin || v < theirMin || v < 1 {
		return 0
	}
	return v
}

// Common returns the features present in both lists, sorted.
func Common(a, b []string) []string {
	var out []string
	for _, f := range a {
		if slices.Contains(b, f) && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}
