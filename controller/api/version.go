package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Supported microversion range. MaxVersion is Ironic 21.4.4's (2023.1); see docs/api.md for
// what Ferrum does not implement below it.
const (
	MinVersion = "1.1"
	MaxVersion = "1.82"

	minMinor = 1
	maxMinor = 82
)

// Version headers (Ironic's Version.string, min_string, max_string).
const (
	hdrVersion    = "X-OpenStack-Ironic-API-Version"
	hdrMinVersion = "X-OpenStack-Ironic-API-Minimum-Version"
	hdrMaxVersion = "X-OpenStack-Ironic-API-Maximum-Version"
	hdrRequestID  = "OpenStack-Request-Id"
)

// Microversions the handlers branch on (ironic/api/controllers/v1/versions.py).
const (
	v2AvailableState       = 2
	v3DriverInternalInfo   = 3
	v4ManageableState      = 4
	v5NodeName             = 5
	v6Inspect              = 6
	v7CleanStep            = 7
	v8Fields               = 8
	v9ProvisionStateFilter = 9
	v10UnrestrictedName    = 10
	v11Enroll              = 11
	v12Raid                = 12
	v13Abort               = 13
	v14StatesLinks         = 14
	v15ManualClean         = 15
	v16DriverFilter        = 16
	v17Adopt               = 17
	v18PortInternalInfo    = 18
	v19PortAdvancedNet     = 19
	v20NetworkInterface    = 20
	v21ResourceClass       = 21
	v22LookupHeartbeat     = 22
	v23Portgroups          = 23
	v24PortgroupSubcontrol = 24
	v25UnsetChassis        = 25
	v26PortgroupMode       = 26
	v27SoftPower           = 27
	v28VIFs                = 28
	v30DynamicDrivers      = 30
	v31DynamicInterfaces   = 31
	v32Volume              = 32
	v33StorageInterface    = 33
	v34PhysicalNetwork     = 34
	v35RebuildConfigdrive  = 35
	v37Traits              = 37
	v38Rescue              = 38
	v39InspectWait         = 39
	v40BiosInterface       = 40
	v41InspectAbort        = 41
	v42Fault               = 42
	v43DetailQuery         = 43
	v44DeployStep          = 44
	v45ResetInterfaces     = 45
	v46ConductorGroup      = 46
	v47AutomatedClean      = 47
	v48Protected           = 48
	v49Conductors          = 49
	v50Owner               = 50
	v51Description         = 51
	v52Allocations         = 52
	v53SmartNIC            = 53
	v54Events              = 54
	v55DeployTemplates     = 55
	v56ConfigdriveDict     = 56
	v57AllocationUpdate    = 57
	v58AllocationBackfill  = 58
	v59VendorData          = 59
	v60AllocationOwner     = 60
	v61Retired             = 61
	v64LLCNetworkType      = 64
	v65Lessee              = 65
	v66NetworkData         = 66
	v67VIFAttachPort       = 67
	v69DeploySteps         = 69
	v70DisableRamdisk      = 70
	v73DeployVerbs         = 73
	v75BootMode            = 75
	v77DriverFields        = 77
	v79AllocationNodeName  = 79
	v81Inventory           = 81
	v82Shard               = 82
)

// negotiate reads the requested microversion the way Ironic's base.Version does: no header
// means 1.1, "latest" the maximum. A malformed value is a 406 without range headers; a
// version out of range is a 406 with them (withRange).
func negotiate(h http.Header) (minor int, withRange bool, err *apiError) {
	vals, ok := h[http.CanonicalHeaderKey(hdrVersion)]
	s := MinVersion
	if ok && len(vals) > 0 {
		s = vals[0]
	}
	if strings.EqualFold(s, "latest") {
		s = MaxVersion
	}
	major, minor, parsed := parseVersion(s)
	if !parsed {
		return 0, false, webobError(http.StatusNotAcceptable,
			"Invalid value for "+hdrVersion+" header")
	}
	if major != 1 {
		return 0, true, webobError(http.StatusNotAcceptable, fmt.Sprintf(
			"Mutually exclusive versions requested. Version %d.%d requested but not supported "+
				"by this service. The supported version range is: [%s, %s].",
			major, minor, MinVersion, MaxVersion))
	}
	if minor < minMinor || minor > maxMinor {
		return 0, true, webobError(http.StatusNotAcceptable, fmt.Sprintf(
			"Version %d.%d was requested but the minor version is not supported by this "+
				"service. The supported version range is: [%s, %s].",
			major, minor, MinVersion, MaxVersion))
	}
	return minor, true, nil
}

// parseVersion accepts "M.N" where both parts are integers as Python's int() reads them.
func parseVersion(s string) (major, minor int, ok bool) {
	a, b, found := strings.Cut(s, ".")
	if !found || strings.Contains(b, ".") {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(strings.TrimSpace(a))
	minor, err2 := strconv.Atoi(strings.TrimSpace(b))
	return major, minor, err1 == nil && err2 == nil
}

// versionString formats an effective minor version.
func versionString(minor int) string { return "1." + strconv.Itoa(minor) }
