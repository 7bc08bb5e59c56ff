// Command guestinit is /init of the e2e's deployed test image (initramfs/e2e). It loads the
// virtio modules in /mods (in name order), finds the config drive the deploy wrote — the MBR
// partition holding an ISO 9660 labelled config-2 — on /dev/vda, and prints
//
//	FERRUM-E2E-DEPLOYED uuid=<meta_data.json's uuid>
//
// on the console, then idles like a booted OS. On failure it prints FERRUM-E2E-ERROR.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"syscall"
	"time"
	"unsafe"
)

// sysFinitModule is finit_module(2) on linux/amd64 (the syscall package lacks it).
const sysFinitModule = 313

func main() {
	fmt.Println("ferrum e2e test image: init started")
	if uuid, err := run(); err != nil {
		fmt.Println("FERRUM-E2E-ERROR", err)
	} else {
		fmt.Printf("FERRUM-E2E-DEPLOYED uuid=%s\n", uuid)
	}
	for {
		time.Sleep(time.Hour)
	}
}

func run() (string, error) {
	os.MkdirAll("/dev", 0o755)
	if err := syscall.Mount("devtmpfs", "/dev", "devtmpfs", 0, ""); err != nil {
		return "", fmt.Errorf("mount devtmpfs: %w", err)
	}
	mods, _ := filepath.Glob("/mods/*.ko")
	sort.Strings(mods)
	empty, _ := syscall.BytePtrFromString("")
	for _, m := range mods {
		f, err := os.Open(m)
		if err != nil {
			return "", err
		}
		_, _, errno := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafe.Pointer(empty)), 0)
		f.Close()
		if errno != 0 && errno != syscall.EEXIST {
			return "", fmt.Errorf("load %s: %w", m, errno)
		}
	}
	var disk *os.File
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var err error
		if disk, err = os.Open("/dev/vda"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no /dev/vda: %w", err)
		}
	}
	defer disk.Close()
	mbr := make([]byte, 512)
	if _, err := disk.ReadAt(mbr, 0); err != nil {
		return "", err
	}
	uuidRe := regexp.MustCompile(`"uuid"\s*:\s*"([0-9a-fA-F-]{36})"`)
	for i := 0; i < 4; i++ {
		e := mbr[446+16*i : 446+16*(i+1)]
		start := int64(binary.LittleEndian.Uint32(e[8:])) * 512
		size := int64(binary.LittleEndian.Uint32(e[12:])) * 512
		if start == 0 || size == 0 {
			continue
		}
		pvd := make([]byte, 0x30)
		if _, err := disk.ReadAt(pvd, start+0x8000); err != nil || string(pvd[1:6]) != "CD001" ||
			string(pvd[0x28:0x30]) != "config-2" {
			continue
		}
		// ISO 9660 stores files contiguously and uncompressed: meta_data.json's text is in
		// the partition as written.
		buf := make([]byte, min(size, 16<<20))
		n, _ := disk.ReadAt(buf, start)
		if m := uuidRe.FindSubmatch(buf[:n]); m != nil {
			return string(m[1]), nil
		}
		return "", fmt.Errorf("config drive in partition %d has no uuid", i+1)
	}
	return "", fmt.Errorf("no config-2 partition on /dev/vda")
}
