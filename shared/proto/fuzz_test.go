package proto

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead feeds arbitrary bytes to the frame reader and every message decoder: they must
// return errors, never panic or allocate beyond MaxFrame. Seeds are the golden files.
func FuzzRead(f *testing.F) {
	files, _ := filepath.Glob("testdata/v*/*.json")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		frame := binary.BigEndian.AppendUint32(nil, uint32(len(b)))
		f.Add(append(frame, b...))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for range 4 {
			env, err := Read(r)
			if err != nil {
				return
			}
			if m := messageFor(env.Type); m != nil {
				if err := env.Decode(m); err == nil {
					if _, err := Marshal(m); err != nil {
						t.Fatalf("decoded %s does not encode: %v", env.Type, err)
					}
				}
			}
		}
	})
}

// FuzzDecodeArgs: command arguments from the wire never panic a decoder.
func FuzzDecodeArgs(f *testing.F) {
	f.Add([]byte(`{"payload":"x"}`))
	f.Add([]byte(`{"max_bytes":-1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p PingArgs
		_ = DecodeArgs(data, &p)
		var l LogsArgs
		_ = DecodeArgs(data, &l)
	})
}
