package proto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// CmdWriteConfigDrive writes an Ironic config drive as a partition labelled config-2 at the end
// of a disk (v3, FeatureConfigDrive). Mutating. Arguments ConfigDriveArgs, result
// ConfigDriveResult.
const CmdWriteConfigDrive = "write_configdrive"

func init() { registerCommands(FeatureConfigDrive, CmdWriteConfigDrive) }

// MaxConfigDriveBytes bounds a config drive's ISO image, as Ironic does (64 MiB); the
// partition written is this size.
const MaxConfigDriveBytes = 64 << 20

// MaxConfigDriveArg bounds the configdrive argument on the wire: base64 of a gzipped ISO of at
// most MaxConfigDriveBytes that compresses poorly, or a JSON object of the same order.
const MaxConfigDriveArg = MaxConfigDriveBytes/3*4 + 4096

// ConfigDriveArgs are write_configdrive's arguments.
type ConfigDriveArgs struct {
	// Device is the disk the instance image was written to (/dev/sda), or a file (tests).
	Device string `json:"device"`
	// ConfigDrive is Ironic's configdrive: a JSON string holding the base64 of an ISO 9660 image,
	// gzipped or not; or a JSON object ConfigDriveContent that the agent renders to the ISO.
	// URLs are not accepted: the controller fetches them and passes the content.
	ConfigDrive json.RawMessage `json:"configdrive"`
}

// ConfigDriveContent is the object form of Ironic's configdrive (API 1.56, vendor_data 1.59).
// The controller fills meta_data's uuid and name from the node when they are missing, as
// Ironic's build_configdrive does.
type ConfigDriveContent struct {
	MetaData    map[string]any `json:"meta_data,omitempty"`
	NetworkData map[string]any `json:"network_data,omitempty"`
	// UserData is a string (written as is) or an object or array (written as JSON).
	UserData   json.RawMessage `json:"user_data,omitempty"`
	VendorData map[string]any  `json:"vendor_data,omitempty"`
}

// Validate checks the arguments without touching the disk or decoding the image.
func (a *ConfigDriveArgs) Validate() error {
	if err := checkDevicePath("write_configdrive: device", a.Device, true); err != nil {
		return err
	}
	_, _, err := a.Parse()
	return err
}

// Parse returns the configdrive argument as either its encoded ISO string (base64, possibly
// of gzip) or its content object; exactly one is set.
func (a *ConfigDriveArgs) Parse() (encoded string, content *ConfigDriveContent, err error) {
	raw := bytes.TrimSpace(a.ConfigDrive)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil, fmt.Errorf("write_configdrive: no configdrive")
	}
	if len(raw) > MaxConfigDriveArg {
		return "", nil, fmt.Errorf("write_configdrive: configdrive of %d bytes, at most %d", len(raw), MaxConfigDriveArg)
	}
	switch raw[0] {
	case '"':
		if err := json.Unmarshal(raw, &encoded); err != nil {
			return "", nil, fmt.Errorf("write_configdrive: configdrive: %w", err)
		}
		if encoded == "" {
			return "", nil, fmt.Errorf("write_configdrive: empty configdrive")
		}
		if strings.HasPrefix(encoded, "http://") || strings.HasPrefix(encoded, "https://") {
			return "", nil, fmt.Errorf("write_configdrive: configdrive is a URL; the controller passes its content")
		}
		return encoded, nil, nil
	case '{':
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		var c ConfigDriveContent
		if err := dec.Decode(&c); err != nil {
			return "", nil, fmt.Errorf("write_configdrive: configdrive object: %w", err)
		}
		if u := bytes.TrimSpace(c.UserData); len(u) > 0 && u[0] != '"' && u[0] != '{' && u[0] != '[' && string(u) != "null" {
			return "", nil, fmt.Errorf("write_configdrive: user_data must be a string, an object or an array")
		}
		return "", &c, nil
	}
	return "", nil, fmt.Errorf("write_configdrive: configdrive must be a string or an object")
}

// ConfigDriveResult is write_configdrive's result.
type ConfigDriveResult struct {
	Device string `json:"device"`
	// Partition is the partition's device (/dev/sda3, /dev/nvme0n1p3); for a file, the file.
	Partition       string `json:"partition"`
	PartitionNumber int    `json:"partition_number"`
	// PartitionTable is "gpt" or "dos".
	PartitionTable string `json:"partition_table"`
	// PartitionUUID is the GPT partition GUID or the MBR disk signature with the number.
	PartitionUUID string `json:"partition_uuid,omitempty"`
	// Offset and Size locate the partition on the disk, in bytes.
	Offset int64 `json:"offset"`
	Size   int64 `json:"size"`
	// ISOBytes is the size of the ISO image written at the partition's start.
	ISOBytes int64 `json:"iso_bytes"`
	// Reused: an existing config-2 partition was overwritten rather than a new one created.
	Reused bool `json:"reused,omitempty"`
}

// checkDevicePath validates a device or file path argument.
func checkDevicePath(what, p string, required bool) error {
	switch {
	case p == "" && required:
		return fmt.Errorf("%s: missing", what)
	case p == "":
		return nil
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%s %q is not an absolute path", what, p)
	case len(p) > 4096:
		return fmt.Errorf("%s longer than 4096 bytes", what)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("%s contains NUL", what)
	}
	return nil
}
