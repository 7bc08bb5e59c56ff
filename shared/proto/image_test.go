package proto

import (
	"strings"
	"testing"
)

func init() {
	v3Examples = append(v3Examples, func() []example {
		return []example{
			{"write_image.args", WriteImageArgs{ID: "debian-12", URLs: []string{"https://images.example/debian-12.qcow2"},
				DiskFormat: DiskFormatQCOW2, OSHashAlgo: HashSHA256, OSHashValue: strings.Repeat("ab", 32),
				ImageSize: 1 << 30, CABundle: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
				RootDeviceHints: map[string]any{"size": map[string]any{">=": 100}, "rotational": false}}},
			{"write_image.args.target", WriteImageArgs{URLs: []string{"http://10.0.0.1:8080/disk.raw"},
				DiskFormat: DiskFormatRaw, OSHashAlgo: HashSHA512, OSHashValue: strings.Repeat("cd", 64), Target: "/dev/sda",
				Compression: CompressionZstd}},
			{"write_image.result", WriteImageResult{Target: "/dev/sda", Reason: "root_device hints matched: size>=100", DownloadBytes: 1 << 30,
				WrittenBytes: 3 << 29, VirtualSize: 10 << 30, OSHashAlgo: HashSHA256, OSHashValue: strings.Repeat("ab", 32),
				DurationMs: 4200, RangeRequests: 1}},
			{"write_image.progress", WriteImageProgress{Bytes: 1 << 29, Total: 1 << 30, Percent: 50, BytesPerSec: 800 << 20}},
		}
	})
}

func validImageArgs() WriteImageArgs {
	return WriteImageArgs{URLs: []string{"http://10.0.0.1/i.raw"}, DiskFormat: DiskFormatRaw,
		OSHashAlgo: HashSHA256, OSHashValue: strings.Repeat("0", 64)}
}

func TestWriteImageArgsValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(a *WriteImageArgs)
		want   string // "" for valid, else a substring of the error
	}{
		{"ok", func(*WriteImageArgs) {}, ""},
		{"ok/qcow2-sha512-target", func(a *WriteImageArgs) {
			a.DiskFormat, a.OSHashAlgo, a.OSHashValue, a.Target = DiskFormatQCOW2, HashSHA512, strings.Repeat("F", 128), "/dev/vda"
		}, ""},
		{"no-urls", func(a *WriteImageArgs) { a.URLs = nil }, "no urls"},
		{"too-many-urls", func(a *WriteImageArgs) { a.URLs = make([]string, MaxImageURLs+1) }, "at most"},
		{"file-url", func(a *WriteImageArgs) { a.URLs = []string{"file:///etc/shadow"} }, "scheme"},
		{"no-host", func(a *WriteImageArgs) { a.URLs = []string{"http:///x"} }, "no host"},
		{"bad-url", func(a *WriteImageArgs) { a.URLs = []string{"http://[::1"} }, "url"},
		{"long-url", func(a *WriteImageArgs) { a.URLs = []string{"http://h/" + strings.Repeat("a", MaxURLLen)} }, "longer"},
		{"vmdk", func(a *WriteImageArgs) { a.DiskFormat = "vmdk" }, "disk_format"},
		{"no-format", func(a *WriteImageArgs) { a.DiskFormat = "" }, "disk_format"},
		{"md5", func(a *WriteImageArgs) { a.OSHashAlgo = "md5" }, "os_hash_algo"},
		{"no-algo", func(a *WriteImageArgs) { a.OSHashAlgo = "" }, "os_hash_algo"},
		{"short-hash", func(a *WriteImageArgs) { a.OSHashValue = "00" }, "os_hash_value"},
		{"sha256-with-sha512-length", func(a *WriteImageArgs) { a.OSHashValue = strings.Repeat("0", 128) }, "os_hash_value"},
		{"not-hex", func(a *WriteImageArgs) { a.OSHashValue = strings.Repeat("g", 64) }, "os_hash_value"},
		{"ok/gzip", func(a *WriteImageArgs) { a.Compression = CompressionGzip }, ""},
		{"xz", func(a *WriteImageArgs) { a.Compression = "xz" }, "compression"},
		{"negative-size", func(a *WriteImageArgs) { a.ImageSize = -1 }, "image_size"},
		{"ca-not-pem", func(a *WriteImageArgs) { a.CABundle = "hello" }, "PEM"},
		{"relative-target", func(a *WriteImageArgs) { a.Target = "dev/sda" }, "absolute"},
		{"nul-target", func(a *WriteImageArgs) { a.Target = "/dev/sda\x00" }, "NUL"},
		{"too-many-hints", func(a *WriteImageArgs) {
			a.RootDeviceHints = map[string]any{}
			for i := range MaxRootHints + 1 {
				a.RootDeviceHints[strings.Repeat("k", i+1)] = 1
			}
		}, "hints"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := validImageArgs()
			tc.modify(&a)
			err := a.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if CommandFeature(CmdWriteImage) != FeatureImage {
		t.Errorf("CommandFeature(%q) = %q, want %q", CmdWriteImage, CommandFeature(CmdWriteImage), FeatureImage)
	}
}

// FuzzWriteImageArgs: any JSON decodes to an error or to arguments whose Validate returns,
// never panics; valid arguments have a usable hash.
func FuzzWriteImageArgs(f *testing.F) {
	f.Add([]byte(`{"urls":["http://h/i"],"disk_format":"raw","os_hash_algo":"sha256","os_hash_value":"` + strings.Repeat("0", 64) + `"}`))
	f.Add([]byte(`{"urls":["https://h:1/i?x=1"],"disk_format":"qcow2","os_hash_algo":"sha512","os_hash_value":"` + strings.Repeat("a", 128) + `","target":"/x","root_device":{"name":"/dev/sda"}}`))
	f.Add([]byte(`{"urls":[""],"disk_format":"qcow2","os_hash_algo":"sha512"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a WriteImageArgs
		if err := DecodeArgs(data, &a); err != nil {
			if CodeOf(err) != CodeBadRequest {
				t.Fatalf("DecodeArgs error without bad_request: %v", err)
			}
			return
		}
		if a.Validate() != nil {
			return
		}
		if _, err := CheckHash(a.OSHashAlgo, a.OSHashValue); err != nil {
			t.Fatalf("valid args with a bad hash: %v", err)
		}
		if len(a.URLs) == 0 || (a.DiskFormat != DiskFormatRaw && a.DiskFormat != DiskFormatQCOW2) {
			t.Fatalf("Validate accepted %+v", a)
		}
	})
}
