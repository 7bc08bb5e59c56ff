// Package configdrive writes Ironic's config drive: it decodes the encoded image (base64,
// gzipped or not, at most 64 MiB) or builds an ISO 9660 volume labelled config-2 from the
// object form (meta_data, network_data, user_data, vendor_data), and writes it into a
// partition at the end of the instance's disk as ironic-python-agent does: an existing
// config-2 partition is reused; on GPT a 64 MiB partition is added after moving the backup
// table to the disk's end; on MBR a primary partition in the last 64 MiB (within 2 TiB).
//
// It works on block devices and on disk image files. Only agent/cmd/ferrum-agent imports it.
package configdrive

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/shared/proto"
)

// Config configures a Writer.
type Config struct {
	Log zerolog.Logger
	// TmpDir stages the files of a built ISO [os.TempDir()].
	TmpDir string
}

// Writer runs write_configdrive.
type Writer struct {
	cfg Config
	log zerolog.Logger
}

// New returns a Writer.
func New(cfg Config) (*Writer, error) {
	return &Writer{cfg: cfg, log: cfg.Log.With().Str("component", "configdrive").Logger()}, nil
}

// Image returns the config drive image of args: decoded, or built from its content.
func (w *Writer) Image(args proto.ConfigDriveArgs) ([]byte, error) {
	enc, content, err := args.Parse()
	if err != nil {
		return nil, proto.Errorf(proto.CodeBadRequest, "%v", err)
	}
	if content != nil {
		return Build(content, w.cfg.TmpDir)
	}
	img, err := Decode(enc)
	if err != nil {
		return nil, proto.Errorf(proto.CodeBadRequest, "%v", err)
	}
	return img, nil
}

// Write runs write_configdrive.
func (w *Writer) Write(ctx context.Context, args proto.ConfigDriveArgs) (proto.ConfigDriveResult, error) {
	if err := args.Validate(); err != nil {
		return proto.ConfigDriveResult{}, proto.Errorf(proto.CodeBadRequest, "%v", err)
	}
	img, err := w.Image(args)
	if err != nil {
		return proto.ConfigDriveResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return proto.ConfigDriveResult{}, err
	}
	dev := args.Device
	if p, err := filepath.EvalSymlinks(dev); err == nil {
		dev = p // /dev/disk/by-path/... → /dev/sda, whose partitions are /dev/sdaN
	}
	d, err := openDisk(dev)
	if err != nil {
		return proto.ConfigDriveResult{}, fmt.Errorf("write_configdrive: %w", err)
	}
	defer d.f.Close()
	res, err := place(d, img)
	if err != nil {
		return res, fmt.Errorf("write_configdrive: %w", err)
	}
	if err := d.rereadPartitions(); err != nil {
		w.log.Warn().Err(err).Str("device", res.Device).Msg("re-reading the partition table failed")
	}
	w.log.Info().Str("device", res.Device).Str("partition", res.Partition).Bool("reused", res.Reused).
		Int64("iso_bytes", res.ISOBytes).Msg("config drive written")
	return res, nil
}

// RunWrite answers write_configdrive.
func (w *Writer) RunWrite(ctx context.Context, raw json.RawMessage, _ func(float64, string)) (any, error) {
	var a proto.ConfigDriveArgs
	if err := proto.DecodeArgs(raw, &a); err != nil {
		return nil, err
	}
	return w.Write(ctx, a)
}
