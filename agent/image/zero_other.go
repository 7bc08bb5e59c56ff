//go:build !linux

package image

import (
	"errors"
	"os"
)

// zeroRange has no cheap way here; the caller writes zeros.
func zeroRange(*os.File, bool, int64, int64) error { return errors.ErrUnsupported }

const oDirect = 0
