package node

// NodeQuery filters, sorts and pages a node list. Zero values mean "no filter".
type NodeQuery struct {
	ProvisionState      State
	Maintenance         *bool
	Associated          *bool // instance_uuid set (true) or not (false)
	Retired             *bool
	Driver              string
	InstanceUUID        string
	ConductorGroup      *string // "" is a real group, so a pointer
	ResourceClass       string
	Fault               string
	Owner               string
	Lessee              string
	ChassisUUID         string
	Shard               string
	DescriptionContains string

	Page
}

// Page is the common pagination of every list. SortKey is an Ironic field name from the
// store's allowed set ("id", "uuid", "name", "created_at", …); empty means "id".
type Page struct {
	Limit   int    // 0 = no limit
	Marker  string // UUID of the last item of the previous page
	SortKey string
	SortDir string // "asc" (default) or "desc"
}

// PortQuery filters ports.
type PortQuery struct {
	NodeUUID      string
	Address       string
	PortgroupUUID string
	Page
}

// PortgroupQuery filters portgroups.
type PortgroupQuery struct {
	NodeUUID string
	Address  string
	Page
}

// AllocationQuery filters allocations.
type AllocationQuery struct {
	NodeUUID      string
	ResourceClass string
	State         string
	Owner         string
	Page
}

// NodeSortKeys are the sort_key values node lists accept.
var NodeSortKeys = []string{"id", "uuid", "name", "created_at", "updated_at", "provision_state",
	"provision_updated_at", "power_state", "driver", "instance_uuid", "maintenance",
	"conductor_group", "resource_class", "owner", "lessee", "shard"}

// PortSortKeys are the sort_key values port, portgroup and allocation lists accept.
var PortSortKeys = []string{"id", "uuid", "address", "created_at", "updated_at", "name"}
