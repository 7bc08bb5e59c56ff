package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferrumhq/ferrum/controller/node"
)

// nodeColumns are the columns written from a node, in the order of nodeValues.
var nodeColumns = []string{"uuid", "name", "driver", "provision_state", "target_provision_state",
	"power_state", "maintenance", "instance_uuid", "conductor_group", "resource_class", "fault",
	"owner", "lessee", "chassis_uuid", "shard", "retired", "description", "created_at",
	"updated_at", "provision_updated_at", "body"}

var (
	nodeInsert = rebind("INSERT INTO nodes (" + strings.Join(nodeColumns, ", ") + ") VALUES (?" +
		strings.Repeat(", ?", len(nodeColumns)-1) + ") RETURNING id")
	// nodeUpdate writes every column of a node held by the owner in the last placeholder.
	// (PostgreSQL writes a new row version whatever changed, so SQLite's changed-columns-only
	// update would buy nothing here.)
	nodeUpdate = rebind("UPDATE nodes SET (" + strings.Join(nodeColumns, ", ") + ") = (?" +
		strings.Repeat(", ?", len(nodeColumns)-1) + ") WHERE uuid = ? AND reservation = ?")
)

// nodeSelect reads what scanNode decodes.
const nodeSelect = "SELECT id, reservation, reservation_expires, body FROM nodes"

var nodeList = listSpec{table: "nodes", kind: "Node", keys: sortKeys(node.NodeSortKeys,
	"name", "instance_uuid", "created_at", "updated_at", "provision_updated_at")}

// nodeValues is the only mapping from a node to its row: the filtered and sorted columns and
// the JSON body come from the same struct, so they cannot disagree. The reservation is not
// part of it; only the reservation methods write those columns.
func nodeValues(n *node.Node) ([]any, error) {
	b := *n
	b.Reservation = ""
	body, err := json.Marshal(&b)
	if err != nil {
		return nil, fmt.Errorf("postgres: encode node %s: %w", n.UUID, err)
	}
	return []any{n.UUID, nullString(n.Name), n.Driver, string(n.ProvisionState),
		string(n.TargetProvisionState), n.PowerState, n.Maintenance, nullString(n.InstanceUUID),
		n.ConductorGroup, n.ResourceClass, n.Fault, n.Owner, n.Lessee, n.ChassisUUID, n.Shard,
		n.Retired, n.Description, micros(n.CreatedAt), micros(n.UpdatedAt),
		micros(n.ProvisionUpdatedAt), string(body)}, nil
}

// normalizeNodeTimes rounds n's times down to what is stored (UTC, microseconds), so the
// caller's copy equals what a later read returns.
func normalizeNodeTimes(n *node.Node) {
	for _, t := range []*time.Time{&n.CreatedAt, &n.UpdatedAt, &n.ProvisionUpdatedAt,
		&n.InspectionStartedAt, &n.InspectionFinishedAt, &n.ReservationExpires} {
		*t = utc(*t)
	}
}

// scanNode decodes a row of nodeSelect. Nodes come back Normalized (no nil maps).
func (s *Store) scanNode(row pgx.Row) (*node.Node, error) {
	var (
		id   int64
		res  *string
		exp  *int64
		body string
	)
	if err := row.Scan(&id, &res, &exp, &body); err != nil {
		return nil, err
	}
	n, err := s.nodes.Decode(id, body)
	if err != nil {
		return nil, fmt.Errorf("postgres: decode node %d: %w", id, err)
	}
	n.ID = id
	n.Reservation = str(res)
	n.ReservationExpires = fromMicros(exp)
	return n, nil
}

// nodeConflict turns a uniqueness violation on nodes into Ironic's message, or returns nil.
func nodeConflict(err error, n *node.Node) error {
	switch uniqueViolation(err) {
	case "nodes.uuid":
		return node.Errorf(node.ErrConflict, "A node with UUID %s already exists.", n.UUID)
	case "nodes.name":
		return node.Errorf(node.ErrConflict, "A node with name %s already exists.", n.Name)
	case "nodes.instance_uuid":
		return node.Errorf(node.ErrConflict, "Instance %s is already associated with a node, it cannot be associated with this other node %s", n.InstanceUUID, n.UUID)
	}
	return nil
}

// CreateNode inserts n unreserved (n.Reservation and n.ReservationExpires are cleared) and
// fills n.ID; a zero n.CreatedAt becomes now. Times in n are rounded to what is stored.
func (s *Store) CreateNode(ctx context.Context, n *node.Node) error {
	n.Reservation, n.ReservationExpires = "", time.Time{}
	if n.CreatedAt.IsZero() {
		n.CreatedAt = time.Now()
	}
	normalizeNodeTimes(n)
	vals, err := nodeValues(n)
	if err != nil {
		return err
	}
	err = s.db.QueryRow(ctx, nodeInsert, vals...).Scan(&n.ID)
	if c := nodeConflict(err, n); c != nil {
		return c
	}
	if err != nil {
		return fmt.Errorf("postgres: create node %s: %w", n.UUID, err)
	}
	return nil
}

// GetNode finds a node by UUID, or by name when ident is not a UUID.
func (s *Store) GetNode(ctx context.Context, ident string) (*node.Node, error) {
	n, err := s.scanNode(s.db.QueryRow(ctx, nodeSelect+" WHERE "+identColumn(ident)+" = $1", ident))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, node.NotFound("Node", ident)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get node %s: %w", ident, err)
	}
	return n, nil
}

// identColumn is the column an ident is looked up in.
func identColumn(ident string) string {
	if isUUID(ident) {
		return "uuid"
	}
	return "name"
}

// ListNodes returns the nodes matching q, one page of them when q.Limit is set.
func (s *Store) ListNodes(ctx context.Context, q node.NodeQuery) ([]*node.Node, error) {
	var w where
	w.Eq("provision_state", string(q.ProvisionState))
	w.Flag("maintenance", q.Maintenance)
	if q.Associated != nil {
		if *q.Associated {
			w.Add("instance_uuid IS NOT NULL")
		} else {
			w.Add("instance_uuid IS NULL")
		}
	}
	w.Flag("retired", q.Retired)
	w.Eq("driver", q.Driver)
	w.Eq("instance_uuid", q.InstanceUUID)
	if q.ConductorGroup != nil {
		w.Add("conductor_group = ?", *q.ConductorGroup)
	}
	w.Eq("resource_class", q.ResourceClass)
	w.Eq("fault", q.Fault)
	w.Eq("owner", q.Owner)
	w.Eq("lessee", q.Lessee)
	w.Eq("chassis_uuid", q.ChassisUUID)
	w.Eq("shard", q.Shard)
	if q.DescriptionContains != "" {
		w.Add("strpos(description, ?) > 0", q.DescriptionContains) // case-sensitive, no wildcards
	}
	return list(ctx, s, nodeList, q.Page, &w, nodeSelect, s.scanNode)
}

// SaveNode writes every field of n but the reservation, only while owner holds the node's
// reservation (expired or not, as long as nobody took it since); else node.ErrLockLost, or
// NotFound when the node is gone. Sets n.UpdatedAt.
func (s *Store) SaveNode(ctx context.Context, n *node.Node, owner string) error {
	return s.saveNode(ctx, n, owner, nil)
}

// SaveNodeWithEvent is SaveNode plus, in the same transaction, ev appended to the power event
// outbox as pending (ev.ID and ev.CreatedAt are set). The node's undelivered events for the
// same instance are superseded: Nova needs only the latest state.
func (s *Store) SaveNodeWithEvent(ctx context.Context, n *node.Node, owner string, ev *node.PowerEvent) error {
	return s.saveNode(ctx, n, owner, ev)
}

func (s *Store) saveNode(ctx context.Context, n *node.Node, owner string, ev *node.PowerEvent) error {
	n.UpdatedAt = time.Now()
	normalizeNodeTimes(n)
	vals, err := nodeValues(n)
	if err != nil {
		return err
	}
	save := func(q querier) error {
		tag, err := q.Exec(ctx, nodeUpdate, append(vals, n.UUID, owner)...)
		if c := nodeConflict(err, n); c != nil {
			return c
		}
		if err != nil {
			return fmt.Errorf("postgres: save node %s: %w", n.UUID, err)
		}
		if tag.RowsAffected() == 0 {
			return s.lockLost(ctx, "save", n.UUID)
		}
		return nil
	}
	if ev == nil {
		return save(s.db)
	}
	return s.write(ctx, "save node", func(tx pgx.Tx) error {
		if err := save(tx); err != nil {
			return err
		}
		return enqueuePowerEvent(ctx, dbq{tx}, ev)
	})
}

// lockLost explains why a write conditioned on owner's reservation matched no row.
func (s *Store) lockLost(ctx context.Context, verb, uuid string) error {
	var one int
	err := s.db.QueryRow(ctx, "SELECT 1 FROM nodes WHERE uuid = $1", uuid).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return node.NotFound("Node", uuid)
	}
	if err != nil {
		return fmt.Errorf("postgres: %s node %s: %w", verb, uuid, err)
	}
	return fmt.Errorf("%s node %s: %w", verb, uuid, node.ErrLockLost)
}

// DeleteNode removes a node reserved by owner, with its ports and portgroups (ON DELETE
// CASCADE). A node reserved by someone else, or by nobody, is node.ErrLockLost.
func (s *Store) DeleteNode(ctx context.Context, uuid, owner string) error {
	var id int64
	err := s.db.QueryRow(ctx, "DELETE FROM nodes WHERE uuid = $1 AND reservation = $2 RETURNING id", uuid, owner).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return s.lockLost(ctx, "delete", uuid)
	}
	if err != nil {
		return fmt.Errorf("postgres: delete node %s: %w", uuid, err)
	}
	s.nodes.Forget(id)
	return nil
}

// ReserveNode takes the node's lock for owner until the given time, in one UPDATE that
// matches only a free or expired reservation: concurrent callers queue on the row lock and
// re-check the condition, so exactly one wins. Locks are not re-entrant.
func (s *Store) ReserveNode(ctx context.Context, ident, owner string, until time.Time) (*node.Node, error) {
	if owner == "" || until.IsZero() {
		return nil, fmt.Errorf("postgres: reserve node %s: owner and expiry are required", ident)
	}
	col := identColumn(ident)
	for attempt := 0; ; attempt++ {
		n, err := s.scanNode(s.db.QueryRow(ctx, "UPDATE nodes SET reservation = $1, reservation_expires = $2"+
			" WHERE "+col+" = $3 AND (reservation IS NULL OR reservation_expires < $4)"+
			" RETURNING id, reservation, reservation_expires, body",
			owner, micros(utc(until)), ident, time.Now().UnixMicro()))
		if err == nil {
			return n, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("postgres: reserve node %s: %w", ident, err)
		}
		var uuid string
		var holder *string
		err = s.db.QueryRow(ctx, "SELECT uuid, reservation FROM nodes WHERE "+col+" = $1", ident).Scan(&uuid, &holder)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, node.NotFound("Node", ident)
		}
		if err != nil {
			return nil, fmt.Errorf("postgres: reserve node %s: %w", ident, err)
		}
		if holder == nil && attempt < 3 {
			continue // released between the two statements: try again
		}
		return nil, &node.LockedError{Node: uuid, Holder: str(holder)}
	}
}

// ReleaseNode drops owner's reservation of the node; a lock not held (or no such node) is
// not an error.
func (s *Store) ReleaseNode(ctx context.Context, uuid, owner string) error {
	_, err := s.db.Exec(ctx, "UPDATE nodes SET reservation = NULL, reservation_expires = NULL WHERE uuid = $1 AND reservation = $2", uuid, owner)
	if err != nil {
		return fmt.Errorf("postgres: release node %s: %w", uuid, err)
	}
	return nil
}

// RenewReservations moves the expiry of every reservation owner holds to until.
func (s *Store) RenewReservations(ctx context.Context, owner string, until time.Time) (int, error) {
	if until.IsZero() {
		return 0, errors.New("postgres: renew reservations: expiry is required")
	}
	tag, err := s.db.Exec(ctx, "UPDATE nodes SET reservation_expires = $1 WHERE reservation = $2", micros(utc(until)), owner)
	if err != nil {
		return 0, fmt.Errorf("postgres: renew reservations: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// ReleaseReservations drops every reservation owner holds.
func (s *Store) ReleaseReservations(ctx context.Context, owner string) (int, error) {
	tag, err := s.db.Exec(ctx, "UPDATE nodes SET reservation = NULL, reservation_expires = NULL WHERE reservation = $1", owner)
	if err != nil {
		return 0, fmt.Errorf("postgres: release reservations: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
