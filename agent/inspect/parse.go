package inspect

import (
	"bufio"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// cpuInfo is what /proc/cpuinfo says.
type cpuInfo struct {
	count     int      // processor stanzas
	modelName string   // "model name" (x86) or "Model Name"/"cpu model" (others)
	mhz       string   // "cpu MHz" of the first CPU
	flags     []string // "flags" (x86) or "Features" (arm)
	sockets   int      // distinct "physical id"s
}

// parseCPUInfo reads /proc/cpuinfo's "key : value" stanzas. Unknown lines are ignored; a
// file without a processor line is an error.
func parseCPUInfo(text string) (cpuInfo, error) {
	var ci cpuInfo
	ids := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch strings.ToLower(k) {
		case "processor":
			if _, err := strconv.Atoi(v); err == nil {
				ci.count++
			}
		case "model name", "cpu model":
			if ci.modelName == "" {
				ci.modelName = v
			}
		case "cpu mhz":
			if ci.mhz == "" {
				if _, err := strconv.ParseFloat(v, 64); err == nil {
					ci.mhz = v
				}
			}
		case "flags", "features":
			if ci.flags == nil {
				ci.flags = strings.Fields(v)
			}
		case "physical id":
			ids[v] = true
		}
	}
	if err := sc.Err(); err != nil {
		return cpuInfo{}, fmt.Errorf("cpuinfo: %w", err)
	}
	if ci.count == 0 {
		return cpuInfo{}, fmt.Errorf("cpuinfo: no processor entries")
	}
	ci.sockets = len(ids)
	return ci, nil
}

// parseMemTotal returns MemTotal of /proc/meminfo in bytes.
func parseMemTotal(text string) (int64, error) {
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("meminfo: bad MemTotal line %q", strings.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb <= 0 || kb > 1<<50 {
			return 0, fmt.Errorf("meminfo: bad MemTotal %q", f[0])
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("meminfo: no MemTotal")
}

var bootifRe = regexp.MustCompile(`^(?:01-)?([0-9a-fA-F]{2})[-:]([0-9a-fA-F]{2})[-:]([0-9a-fA-F]{2})[-:]([0-9a-fA-F]{2})[-:]([0-9a-fA-F]{2})[-:]([0-9a-fA-F]{2})$`)

// parseBOOTIF returns the MAC address of the kernel command line's BOOTIF parameter
// (PXELINUX's "01-52-54-00-12-34-56" or iPXE's "52:54:00:12:34:56"), lower case, or "".
func parseBOOTIF(cmdline string) string {
	for _, f := range strings.Fields(cmdline) {
		v, ok := strings.CutPrefix(f, "BOOTIF=")
		if !ok {
			continue
		}
		m := bootifRe.FindStringSubmatch(strings.Trim(v, `"`))
		if m == nil {
			return ""
		}
		return strings.ToLower(strings.Join(m[1:], ":"))
	}
	return ""
}
