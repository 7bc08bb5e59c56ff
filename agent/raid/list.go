package raid

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ferrumhq/ferrum/shared/proto"
)

var mdRe = regexp.MustCompile(`^md\d+$`)

// List returns the md arrays from sysfs, with their UUID and name from mdadm --detail.
func (r *RAID) List(ctx context.Context) ([]proto.RAIDArray, error) {
	ents, err := os.ReadDir(filepath.Join(r.cfg.SysDir, "block"))
	if err != nil {
		return nil, err
	}
	out := []proto.RAIDArray{}
	for _, e := range ents {
		name := e.Name()
		if !mdRe.MatchString(name) {
			continue
		}
		dir := filepath.Join(r.cfg.SysDir, "block", name)
		attr := func(p string) string {
			b, _ := os.ReadFile(filepath.Join(dir, p))
			return strings.TrimSpace(string(b))
		}
		if _, err := os.Stat(filepath.Join(dir, "md")); err != nil {
			continue
		}
		a := proto.RAIDArray{Name: "/dev/" + name, RAIDLevel: ironicLevel(attr("md/level")), State: attr("md/array_state"),
			Metadata: attr("md/metadata_version"), Members: []string{}}
		if n, err := strconv.ParseInt(attr("size"), 10, 64); err == nil {
			a.SizeBytes = n * 512
		}
		slaves, _ := os.ReadDir(filepath.Join(dir, "slaves"))
		for _, s := range slaves {
			a.Members = append(a.Members, "/dev/"+s.Name())
			if d := r.parentDisk(s.Name()); !slices.Contains(a.PhysicalDisks, d) {
				a.PhysicalDisks = append(a.PhysicalDisks, d)
			}
		}
		if out, err := r.cfg.Exec.Exec(ctx, "mdadm", "--detail", "--export", a.Name); err == nil {
			kv := parseExport(out)
			a.UUID = kv["MD_UUID"]
			if n := kv["MD_NAME"]; n != "" {
				_, a.VolumeName, _ = strings.Cut(n, ":") // host:name
				if a.VolumeName == "" {
					a.VolumeName = n
				}
			}
		} else {
			r.log.Debug().Err(err).Str("array", a.Name).Msg("mdadm --detail failed")
		}
		out = append(out, a)
	}
	return out, nil
}

// parentDisk returns the disk holding partition part (/dev/sda for sda2), from sysfs
// (/sys/block/DISK/PART), or part itself when it is a whole disk.
func (r *RAID) parentDisk(part string) string {
	if m, _ := filepath.Glob(filepath.Join(r.cfg.SysDir, "block", "*", part)); len(m) == 1 {
		return "/dev/" + filepath.Base(filepath.Dir(m[0]))
	}
	return "/dev/" + part
}

// parseExport reads mdadm --export KEY=VALUE lines.
func parseExport(b []byte) map[string]string {
	out := map[string]string{}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), "="); ok {
			out[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `'"`)
		}
	}
	return out
}
