package proto

import (
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
)

// CmdWriteImage writes a whole-disk image to the node's disk (v3, FeatureImage). Mutating.
// Arguments WriteImageArgs, result WriteImageResult, progress data WriteImageProgress.
const CmdWriteImage = "write_image"

func init() { registerCommands(FeatureImage, CmdWriteImage) }

// Disk formats write_image accepts (Ironic's disk_format). The agent never sniffs the format:
// the image's header must agree with the one named here.
const (
	DiskFormatRaw   = "raw"
	DiskFormatQCOW2 = "qcow2"
)

// Hash algorithms write_image accepts (Glance's os_hash_algo).
const (
	HashSHA256 = "sha256"
	HashSHA512 = "sha512"
)

// Limits on WriteImageArgs.
const (
	MaxImageURLs   = 8
	MaxURLLen      = 4096
	MaxCABundleLen = 1 << 20
	MaxRootHints   = 32
)

// WriteImageArgs are write_image's arguments; the names follow Ironic's image_info.
type WriteImageArgs struct {
	// ID names the image (image_info.id), for logs only.
	ID string `json:"id,omitempty"`
	// URLs are tried in order until one answers; http or https.
	URLs []string `json:"urls"`
	// DiskFormat is raw or qcow2.
	DiskFormat string `json:"disk_format"`
	// OSHashAlgo and OSHashValue check the image file as served (Glance's os_hash_*).
	OSHashAlgo  string `json:"os_hash_algo"`
	OSHashValue string `json:"os_hash_value"`
	// ImageSize is the image file's size in bytes when known (0: unknown); a download of any
	// other length fails.
	ImageSize int64 `json:"image_size,omitempty"`
	// CABundle is PEM: when set, the HTTPS server must chain to one of these certificates.
	CABundle string `json:"ca_bundle,omitempty"`
	// RootDeviceHints selects the target disk (Ironic's root_device); ignored with Target.
	RootDeviceHints map[string]any `json:"root_device,omitempty"`
	// Target is an explicit device or file path (tests, image builders).
	Target string `json:"target,omitempty"`
	// Compression wraps the image file: none, gzip or zstd; empty means none unless the URL's
	// path ends in .gz or .zst. The checksum is of the file as served (compressed).
	Compression string `json:"compression,omitempty"`
}

// Compression wrappers of an image file.
const (
	CompressionNone = "none"
	CompressionGzip = "gzip"
	CompressionZstd = "zstd"
)

// Validate checks the arguments without touching the network or the disk.
func (a *WriteImageArgs) Validate() error {
	if len(a.URLs) == 0 {
		return fmt.Errorf("write_image: no urls")
	}
	if len(a.URLs) > MaxImageURLs {
		return fmt.Errorf("write_image: %d urls, at most %d", len(a.URLs), MaxImageURLs)
	}
	for _, s := range a.URLs {
		if len(s) > MaxURLLen {
			return fmt.Errorf("write_image: url longer than %d bytes", MaxURLLen)
		}
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("write_image: url: %w", err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Errorf("write_image: url scheme %q, want http or https", u.Scheme)
		}
		if u.Host == "" {
			return fmt.Errorf("write_image: url %q has no host", u.Redacted())
		}
	}
	switch a.DiskFormat {
	case DiskFormatRaw, DiskFormatQCOW2:
	default:
		return fmt.Errorf("write_image: disk_format %q, want raw or qcow2", a.DiskFormat)
	}
	if _, err := CheckHash(a.OSHashAlgo, a.OSHashValue); err != nil {
		return fmt.Errorf("write_image: %w", err)
	}
	switch a.Compression {
	case "", CompressionNone, CompressionGzip, CompressionZstd:
	default:
		return fmt.Errorf("write_image: compression %q, want none, gzip or zstd", a.Compression)
	}
	if a.ImageSize < 0 {
		return fmt.Errorf("write_image: negative image_size")
	}
	if len(a.CABundle) > MaxCABundleLen {
		return fmt.Errorf("write_image: ca_bundle larger than %d bytes", MaxCABundleLen)
	}
	if a.CABundle != "" && !strings.Contains(a.CABundle, "-----BEGIN CERTIFICATE-----") {
		return fmt.Errorf("write_image: ca_bundle holds no PEM certificate")
	}
	if len(a.RootDeviceHints) > MaxRootHints {
		return fmt.Errorf("write_image: %d root_device hints, at most %d", len(a.RootDeviceHints), MaxRootHints)
	}
	if a.Target != "" && !strings.HasPrefix(a.Target, "/") {
		return fmt.Errorf("write_image: target %q is not an absolute path", a.Target)
	}
	if strings.ContainsRune(a.Target, 0) {
		return fmt.Errorf("write_image: target contains NUL")
	}
	return nil
}

// CheckHash validates an algorithm and hex digest pair and returns the digest's bytes.
func CheckHash(algo, value string) ([]byte, error) {
	var n int
	switch algo {
	case HashSHA256:
		n = 32
	case HashSHA512:
		n = 64
	case "":
		return nil, fmt.Errorf("no os_hash_algo")
	default:
		return nil, fmt.Errorf("os_hash_algo %q, want sha256 or sha512", algo)
	}
	b, err := hex.DecodeString(value)
	if err != nil || len(b) != n {
		return nil, fmt.Errorf("os_hash_value is not %d hex digits of %s", 2*n, algo)
	}
	return b, nil
}

// WriteImageResult is write_image's result.
type WriteImageResult struct {
	// Target is the device or file written; Reason says why that one (hints matched, explicit).
	Target string `json:"target"`
	Reason string `json:"reason,omitempty"`
	// DownloadBytes is the image file's size as downloaded; WrittenBytes what reached the
	// target as data (zeros skipped and zeroed cheaply are not counted); VirtualSize the
	// disk size the image describes.
	DownloadBytes int64 `json:"download_bytes"`
	WrittenBytes  int64 `json:"written_bytes"`
	VirtualSize   int64 `json:"virtual_size"`
	// OSHashAlgo and OSHashValue are what the download hashed to (it matched the request).
	OSHashAlgo  string `json:"os_hash_algo"`
	OSHashValue string `json:"os_hash_value"`
	DurationMs  int64  `json:"duration_ms"`
	// RangeRequests counts hash-checked re-reads of a qcow2 whose metadata followed its data.
	RangeRequests int `json:"range_requests,omitempty"`
}

// WriteImageProgress is write_image's progress: bytes downloaded of Total (0: unknown).
type WriteImageProgress struct {
	Bytes       int64   `json:"bytes"`
	Total       int64   `json:"total,omitempty"`
	Percent     float64 `json:"percent"`
	BytesPerSec int64   `json:"bytes_per_sec"`
}
