package configdrive

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// Label is the volume label cloud-init looks for.
const Label = "config-2"

// Decode turns Ironic's encoded config drive (base64 of an ISO 9660 or FAT image, gzipped or
// not) into the image, refusing anything above proto.MaxConfigDriveBytes or that is not a
// filesystem image.
func Decode(encoded string) ([]byte, error) {
	if len(encoded) > proto.MaxConfigDriveArg {
		return nil, fmt.Errorf("configdrive: %d bytes of base64, at most %d", len(encoded), proto.MaxConfigDriveArg)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' {
			return -1
		}
		return r
	}, encoded))
	if err != nil {
		return nil, fmt.Errorf("configdrive: not base64: %w", err)
	}
	img := raw
	if len(raw) >= 2 && raw[0] == 0x1f && raw[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("configdrive: gzip: %w", err)
		}
		img, err = io.ReadAll(io.LimitReader(zr, proto.MaxConfigDriveBytes+1))
		if err != nil {
			return nil, fmt.Errorf("configdrive: gunzip: %w", err)
		}
	}
	if len(img) > proto.MaxConfigDriveBytes {
		return nil, fmt.Errorf("configdrive: image larger than %d bytes", proto.MaxConfigDriveBytes)
	}
	if !isISO(img) && !isFAT(img) {
		return nil, errors.New("configdrive: not an ISO 9660 or FAT image")
	}
	return img, nil
}

func isISO(b []byte) bool { return len(b) >= 32774 && string(b[32769:32774]) == "CD001" }

func isFAT(b []byte) bool {
	return len(b) >= 512 && b[510] == 0x55 && b[511] == 0xAA &&
		(string(b[54:57]) == "FAT" || string(b[82:85]) == "FAT")
}

// Build renders the object form of a config drive to an ISO 9660 image labelled config-2, in
// the OpenStack layout cloud-init reads (openstack/{2012-08-10,latest}/meta_data.json,
// user_data, network_data.json, vendor_data2.json), as Ironic's build_configdrive does.
// tmpDir holds the staging files (os.TempDir when empty).
func Build(c *proto.ConfigDriveContent, tmpDir string) ([]byte, error) {
	files := map[string][]byte{}
	meta := c.MetaData
	if meta == nil {
		meta = map[string]any{}
	}
	var err error
	if files["meta_data.json"], err = json.Marshal(meta); err != nil {
		return nil, fmt.Errorf("configdrive: meta_data: %w", err)
	}
	if c.NetworkData != nil {
		if files["network_data.json"], err = json.Marshal(c.NetworkData); err != nil {
			return nil, fmt.Errorf("configdrive: network_data: %w", err)
		}
	}
	if c.VendorData != nil {
		if files["vendor_data2.json"], err = json.Marshal(c.VendorData); err != nil {
			return nil, fmt.Errorf("configdrive: vendor_data: %w", err)
		}
	}
	if u := bytes.TrimSpace(c.UserData); len(u) > 0 && string(u) != "null" {
		if u[0] == '"' {
			var s string
			if err := json.Unmarshal(u, &s); err != nil {
				return nil, fmt.Errorf("configdrive: user_data: %w", err)
			}
			if s != "" {
				files["user_data"] = []byte(s)
			}
		} else {
			files["user_data"] = u // an object or array, as JSON
		}
	}
	total := 0
	for _, b := range files {
		total += 2 * len(b)
	}
	if total > proto.MaxConfigDriveBytes-(1<<20) {
		return nil, fmt.Errorf("configdrive: content of %d bytes does not fit in %d", total, proto.MaxConfigDriveBytes)
	}
	work, err := os.MkdirTemp(tmpDir, "configdrive-")
	if err != nil {
		return nil, fmt.Errorf("configdrive: %w", err)
	}
	defer os.RemoveAll(work)
	tree := filepath.Join(work, "tree")
	for _, v := range []string{"2012-08-10", "latest"} {
		dir := filepath.Join(tree, "openstack", v)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("configdrive: %w", err)
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				return nil, fmt.Errorf("configdrive: %w", err)
			}
		}
	}
	isoPath := filepath.Join(work, "cd.iso")
	f, err := os.Create(isoPath)
	if err != nil {
		return nil, fmt.Errorf("configdrive: %w", err)
	}
	defer f.Close()
	fsys, err := iso9660.Create(file.New(f, false), 0, 0, 2048, tree)
	if err != nil {
		return nil, fmt.Errorf("configdrive: iso9660: %w", err)
	}
	if err := fsys.Finalize(iso9660.FinalizeOptions{RockRidge: true, Joliet: true, VolumeIdentifier: Label}); err != nil {
		return nil, fmt.Errorf("configdrive: iso9660: %w", err)
	}
	img, err := os.ReadFile(isoPath)
	if err != nil {
		return nil, fmt.Errorf("configdrive: %w", err)
	}
	if len(img) > proto.MaxConfigDriveBytes {
		return nil, fmt.Errorf("configdrive: image of %d bytes, at most %d", len(img), proto.MaxConfigDriveBytes)
	}
	if !isISO(img) {
		return nil, errors.New("configdrive: iso9660 wrote no volume descriptor")
	}
	// ISO 9660 pads the volume identifier with spaces; go-diskfs pads it with NULs.
	id := img[32808:32840]
	for i, c := range id {
		if c == 0 {
			id[i] = ' '
		}
	}
	return img, nil
}
