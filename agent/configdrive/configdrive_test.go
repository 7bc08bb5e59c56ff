package configdrive

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	gpt "github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"

	"github.com/ferrumhq/ferrum/shared/proto"
)

const mib = 1 << 20

var content = proto.ConfigDriveContent{
	MetaData:    map[string]any{"uuid": "7d0d3b3e-5a36-4a47-9d7e-3d1a3f5b9c10", "hostname": "node-1", "public_keys": map[string]any{"0": "ssh-ed25519 AAAA"}},
	NetworkData: map[string]any{"links": []any{map[string]any{"id": "eth0", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56"}}},
	UserData:    json.RawMessage(`"#cloud-config\nhostname: node-1\n"`),
	VendorData:  map[string]any{"x": 1.0},
}

// readISO opens the ISO 9660 filesystem at off in path.
func readISO(t *testing.T, path string, off, size int64) *iso9660.FileSystem {
	t.Helper()
	if off != 0 { // iso9660.Read mislocates the root directory at a non-zero start: copy it out
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		_, err = f.ReadAt(b, off)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		path = filepath.Join(t.TempDir(), "part.iso")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := file.OpenFromPath(path, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	fsys, err := iso9660.Read(b, size, 0, 2048)
	if err != nil {
		t.Fatalf("iso9660.Read(%s at %d): %v", path, off, err)
	}
	return fsys
}

func isoFile(t *testing.T, fsys *iso9660.FileSystem, p string) []byte {
	t.Helper()
	f, err := fsys.OpenFile(p, os.O_RDONLY)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func buildISO(t *testing.T) []byte {
	t.Helper()
	img, err := Build(&content, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestBuild(t *testing.T) {
	img := buildISO(t)
	path := filepath.Join(t.TempDir(), "cd.iso")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	fsys := readISO(t, path, 0, int64(len(img)))
	if got := strings.TrimRight(fsys.Label(), " "); got != Label {
		t.Errorf("label = %q, want %q", got, Label)
	}
	if got := string(img[32808:32840]); got != Label+strings.Repeat(" ", 24) {
		t.Errorf("volume identifier = %q, want config-2 padded with spaces", got)
	}
	for _, v := range []string{"latest", "2012-08-10"} {
		var meta map[string]any
		if err := json.Unmarshal(isoFile(t, fsys, "/openstack/"+v+"/meta_data.json"), &meta); err != nil || !cmp.Equal(meta, content.MetaData) {
			t.Errorf("%s meta_data.json = %v, %v", v, meta, err)
		}
		if got := string(isoFile(t, fsys, "/openstack/"+v+"/user_data")); got != "#cloud-config\nhostname: node-1\n" {
			t.Errorf("%s user_data = %q", v, got)
		}
		var nd, vd map[string]any
		_ = json.Unmarshal(isoFile(t, fsys, "/openstack/"+v+"/network_data.json"), &nd)
		_ = json.Unmarshal(isoFile(t, fsys, "/openstack/"+v+"/vendor_data2.json"), &vd)
		if !cmp.Equal(nd, content.NetworkData) || !cmp.Equal(vd, content.VendorData) {
			t.Errorf("%s network_data %v vendor_data %v", v, nd, vd)
		}
	}
	// user_data given as an object is written as JSON; empty content still has meta_data.
	img2, err := Build(&proto.ConfigDriveContent{UserData: json.RawMessage(`{"a":[1]}`)}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p2 := filepath.Join(t.TempDir(), "cd2.iso")
	os.WriteFile(p2, img2, 0o644)
	fs2 := readISO(t, p2, 0, int64(len(img2)))
	if got := string(isoFile(t, fs2, "/openstack/latest/user_data")); got != `{"a":[1]}` {
		t.Errorf("object user_data = %q", got)
	}
	if got := string(isoFile(t, fs2, "/openstack/latest/meta_data.json")); got != "{}" {
		t.Errorf("empty meta_data = %q", got)
	}
}

// TestBuildReadByIsoinfo reads the built image with isoinfo (genisoimage), as an operator
// would, through the Joliet tree cloud-init's mount sees.
func TestBuildReadByIsoinfo(t *testing.T) {
	needTool(t, "isoinfo")
	path := filepath.Join(t.TempDir(), "cd.iso")
	if err := os.WriteFile(path, buildISO(t), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("isoinfo", "-d", "-i", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Volume id: config-2") {
		t.Errorf("isoinfo -d: %v\n%s", err, out)
	}
	out, err = exec.Command("isoinfo", "-R", "-i", path, "-x", "/openstack/latest/meta_data.json").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"hostname":"node-1"`) {
		t.Errorf("isoinfo -R -x meta_data.json: %v\n%s", err, out)
	}
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("FERRUM_SLOW") != "" {
			t.Fatalf("%s not installed: run agent/configdrive/test-setup.sh", name)
		}
		t.Skipf("%s not installed; FERRUM_SLOW=1 (make test) installs it through agent/configdrive/test-setup.sh", name)
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestDecode(t *testing.T) {
	iso := buildISO(t)
	b64 := base64.StdEncoding.EncodeToString
	// 65 gzip members of 1 MiB of zeros: one stream of 65 MiB, cheap to make under -race.
	bomb := bytes.Repeat(gz(make([]byte, mib)), proto.MaxConfigDriveBytes/mib+1)
	fat := make([]byte, 1024)
	copy(fat[82:], "FAT32")
	fat[510], fat[511] = 0x55, 0xAA
	tests := []struct {
		name string
		in   string
		want []byte
		err  string
	}{
		{"gzip", b64(gz(iso)), iso, ""},
		{"plain", b64(iso), iso, ""},
		{"wrapped-lines", strings.Join(strings.SplitAfterN(b64(gz(iso)), "", 1), "") + "\n", iso, ""},
		{"fat", b64(fat), fat, ""},
		{"not-base64", "!!!", nil, "base64"},
		{"bad-gzip", b64([]byte{0x1f, 0x8b, 0, 0}), nil, "gzip"},
		{"too-large", b64(bomb), nil, "larger"},
		{"not-an-image", b64([]byte("hello")), nil, "not an ISO"},
		{"empty", "", nil, "not an ISO"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("Decode() = %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Errorf("Decode() = %d bytes, %v; want %d bytes", len(got), err, len(tc.want))
			}
		})
	}
}

// gptImage writes a whole-disk "image" of imgSize bytes with two partitions and grows the file
// to diskSize, leaving the backup GPT in the middle, as dd of an image to a bigger disk does.
func gptImage(t *testing.T, imgSize, diskSize int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(imgSize)
	tbl := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true, Partitions: []*gpt.Partition{
		{Index: 1, Start: 2048, End: 4095, Type: gpt.EFISystemPartition, Name: "esp"},
		{Index: 2, Start: 4096, End: uint64(imgSize/512) - 34, Type: gpt.LinuxFilesystem, Name: "root"},
	}}
	w, _ := file.New(f, false).Writable()
	if err := tbl.Write(w, imgSize); err != nil {
		t.Fatal(err)
	}
	f.Truncate(diskSize)
	f.Close()
	return path
}

func newWriter(t *testing.T) *Writer {
	w, err := New(Config{Log: zerolog.New(zerolog.NewTestWriter(t)), TmpDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func args(dev string, c any) proto.ConfigDriveArgs {
	b, _ := json.Marshal(c)
	return proto.ConfigDriveArgs{Device: dev, ConfigDrive: b}
}

func TestWriteGPT(t *testing.T) {
	const size = 300 * mib
	path := gptImage(t, 100*mib, size)
	w := newWriter(t)
	res, err := w.Write(context.Background(), args(path, content))
	if err != nil {
		t.Fatal(err)
	}
	wantOff := int64(size - 64*mib - mib) // last usable sector, 64 MiB back, aligned down
	if res.PartitionNumber != 3 || res.Partition != path+"3" || res.PartitionTable != "gpt" || res.Offset != wantOff || res.Reused ||
		res.Size < proto.MaxConfigDriveBytes || len(res.PartitionUUID) != 36 {
		t.Errorf("Write() = %+v, want a new partition 3 at %d", res, wantOff)
	}
	b, _ := file.OpenFromPath(path, true)
	tbl, err := gpt.Read(b, 512, 512)
	b.Close()
	if err != nil || tbl.RecoveredFromBackup {
		t.Fatalf("gpt.Read = %v (recovered from backup: %v)", err, tbl != nil && tbl.RecoveredFromBackup)
	}
	f, _ := os.Open(path)
	defer f.Close()
	hdr := make([]byte, 8)
	f.ReadAt(hdr, size-512)
	if string(hdr) != "EFI PART" {
		t.Error("backup GPT header not moved to the disk's end")
	}
	if len(tbl.Partitions) != 3 || tbl.Partitions[2].Name != Label || int64(tbl.Partitions[2].Start)*512 != wantOff {
		t.Errorf("partitions after Write: %+v", tbl.Partitions)
	}
	fsys := readISO(t, path, res.Offset, res.Size)
	if strings.TrimSpace(fsys.Label()) != Label || !strings.Contains(string(isoFile(t, fsys, "/openstack/latest/meta_data.json")), "node-1") {
		t.Error("config drive not readable at the partition")
	}
	if _, err := exec.LookPath("blkid"); err == nil { // what cloud-init looks for: LABEL=config-2
		out, err := exec.Command("blkid", "-p", "-o", "export", "-O", fmt.Sprint(res.Offset), path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "LABEL=config-2\n") || !strings.Contains(string(out), "TYPE=iso9660") {
			t.Errorf("blkid at the partition: %v\n%s", err, out)
		}
	}
	// Written again (a rebuild), with the encoded form: the config-2 partition is reused.
	enc := base64.StdEncoding.EncodeToString(gz(buildISO(t)))
	res2, err := w.Write(context.Background(), args(path, enc))
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Reused || res2.PartitionNumber != 3 || res2.Offset != res.Offset {
		t.Errorf("second Write() = %+v, want partition 3 reused", res2)
	}
	if _, err := exec.LookPath("sgdisk"); err == nil {
		out, err := exec.Command("sgdisk", "-v", path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "No problems found") {
			t.Errorf("sgdisk -v: %v\n%s", err, out)
		}
	}
}

// mbrImage makes an MBR disk with n primary partitions of 8 MiB from 1 MiB on.
func mbrImage(t *testing.T, size int64, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, _ := os.Create(path)
	defer f.Close()
	f.Truncate(size)
	mbr := make([]byte, 512)
	binary.LittleEndian.PutUint32(mbr[440:], 0xdeadbeef)
	for i := range n {
		e := mbr[446+16*i:]
		e[4] = 0x83
		binary.LittleEndian.PutUint32(e[8:], uint32(2048+i*16384))
		binary.LittleEndian.PutUint32(e[12:], 16384)
	}
	mbr[510], mbr[511] = 0x55, 0xAA
	f.WriteAt(mbr, 0)
	return path
}

func TestWriteMBR(t *testing.T) {
	path := mbrImage(t, 200*mib, 1)
	w := newWriter(t)
	res, err := w.Write(context.Background(), args(path, content))
	if err != nil {
		t.Fatal(err)
	}
	want := proto.ConfigDriveResult{Device: path, Partition: path + "2", PartitionNumber: 2, PartitionTable: "dos",
		PartitionUUID: "deadbeef-02", Offset: 136 * mib, Size: 64 * mib, ISOBytes: res.ISOBytes}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("Write() (-want +got):\n%s", diff)
	}
	f, _ := os.Open(path)
	e := make([]byte, 16)
	f.ReadAt(e, 446+16)
	f.Close()
	if e[4] != mbrFAT32LBA || binary.LittleEndian.Uint32(e[8:]) != 136*2048 || binary.LittleEndian.Uint32(e[12:]) != 64*2048 {
		t.Errorf("MBR entry 2 = % x", e)
	}
	if fsys := readISO(t, path, res.Offset, res.Size); strings.TrimSpace(fsys.Label()) != Label {
		t.Error("config drive not readable")
	}
	res2, err := w.Write(context.Background(), args(path, content))
	if err != nil || !res2.Reused || res2.PartitionNumber != 2 {
		t.Errorf("second Write() = %+v, %v; want partition 2 reused", res2, err)
	}
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	blank := filepath.Join(dir, "blank.img")
	os.WriteFile(blank, make([]byte, 8*mib), 0o644)
	full := gptImage(t, 100*mib, 100*mib)
	tests := []struct {
		name string
		args proto.ConfigDriveArgs
		code proto.Code
		want string
	}{
		{"no-table", args(blank, content), "", "no partition table"},
		{"gpt-full", args(full, content), "", "no room"},
		{"four-primaries", args(mbrImage(t, 200*mib, 4), content), "", "four primary"},
		{"mbr-full", args(mbrImage(t, 36*mib, 2), content), "", "no room"},
		{"missing-device", args(filepath.Join(dir, "nope"), content), "", "no such file"},
		{"not-an-image", args(blank, base64.StdEncoding.EncodeToString([]byte("hi"))), proto.CodeBadRequest, "not an ISO"},
		{"url", args(blank, "https://swift/cd"), proto.CodeBadRequest, "URL"},
		{"directory", args(dir, content), "", "not a block device"},
	}
	w := newWriter(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.Write(context.Background(), tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.code != "" && proto.CodeOf(err) != tc.code) {
				t.Errorf("Write() = %v, want an error containing %q (code %q)", err, tc.want, tc.code)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	iso, err := Build(&content, f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(base64.StdEncoding.EncodeToString(gz(iso[:40000])))
	f.Add(base64.StdEncoding.EncodeToString(iso[:33000]))
	f.Add("H4sIAAAAAAAA/wMAAAAAAAAAAAA=")
	f.Fuzz(func(t *testing.T, s string) {
		img, err := Decode(s)
		if err != nil {
			return
		}
		if len(img) > proto.MaxConfigDriveBytes || (!isISO(img) && !isFAT(img)) {
			t.Fatalf("Decode accepted %d bytes that are not a config drive image", len(img))
		}
	})
}

// A by-path style symlink names the partition after the disk it points to.
func TestWriteThroughSymlink(t *testing.T) {
	path := mbrImage(t, 200*mib, 1)
	link := filepath.Join(t.TempDir(), "pci-0000:00:1f.2-ata-1")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	res, err := newWriter(t).Write(context.Background(), args(link, content))
	if err != nil || res.Partition != path+"2" || res.Device != path {
		t.Errorf("Write(symlink) = %+v, %v; want partition %s2", res, err, path)
	}
}
