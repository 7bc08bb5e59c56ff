package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferrumhq/ferrum/controller/node"
)

// nodeColumns are the columns written from a node, in the order of nodeValues.
var nodeColumns = []string{"uuid", "name", "driver", "provision_state", "target_provision_state",
	"power_state", "maintenance", "instance_uuid", "conductor_group", "resource_class", "fault",
	"owner", "lessee", "chassis_uuid", "shard", "retired", "description", "created_at",
	"updated_at", "provision_updated_at", "body"}

var (
	nodeInsert = "INSERT INTO nodes (" + strings.Join(nodeColumns, ", ") + ") VALUES (?" +
		strings.Repeat(", ?", len(nodeColumns)-1) + ") RETURNING id"
	// nodeSame selects, for each of nodeColumns, whether the row holds the given value.
	nodeSame = "SELECT " + strings.Join(nodeColumns, " IS ?, ") + " IS ? FROM nodes"
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
		return nil, fmt.Errorf("sqlite: encode node %s: %w", n.UUID, err)
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

type scanner interface{ Scan(dest ...any) error }

// scanNode decodes a row of nodeSelect. Nodes come back Normalized (no nil maps).
func (s *Store) scanNode(sc scanner) (*node.Node, error) {
	var (
		id   int64
		res  sql.NullString
		exp  sql.NullInt64
		body string // the driver's string, not copied again
	)
	if err := sc.Scan(&id, &res, &exp, &body); err != nil {
		return nil, err
	}
	n, err := s.nodes.Decode(id, body)
	if err != nil {
		return nil, fmt.Errorf("sqlite: decode node %d: %w", id, err)
	}
	n.ID = id
	n.Reservation = res.String
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
	return s.write(ctx, "create node", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, nodeInsert, vals...).Scan(&n.ID)
		if c := nodeConflict(err, n); c != nil {
			return c
		}
		if err != nil {
			return fmt.Errorf("sqlite: create node %s: %w", n.UUID, err)
		}
		return nil
	})
}

// GetNode finds a node by UUID, or by name when ident is not a UUID.
func (s *Store) GetNode(ctx context.Context, ident string) (*node.Node, error) {
	n, err := s.scanNode(s.r.QueryRowContext(ctx, nodeSelect+" WHERE "+identColumn(ident)+" = ?", ident))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, node.NotFound("Node", ident)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get node %s: %w", ident, err)
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
		w.Add("instr(description, ?) > 0", q.DescriptionContains) // case-sensitive, no wildcards
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
	return s.write(ctx, "save node", func(tx *sql.Tx) error {
		if err := s.saveNodeTx(ctx, tx, n, owner, vals); err != nil {
			return err
		}
		if ev != nil {
			return enqueuePowerEvent(ctx, tx, ev)
		}
		return nil
	})
}

// saveNodeTx writes the changed columns of n (vals from nodeValues) while owner holds it.
func (s *Store) saveNodeTx(ctx context.Context, tx *sql.Tx, n *node.Node, owner string, vals []any) error {
	// Write only the columns whose value changed: SQLite rewrites every index on a column
	// named in SET, and those index pages are most of what a commit writes.
	same := make([]bool, len(nodeColumns))
	dest := make([]any, len(same))
	for i := range same {
		dest[i] = &same[i]
	}
	err := tx.QueryRowContext(ctx, nodeSame+" WHERE uuid = ? AND reservation = ?", append(vals, n.UUID, owner)...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return lockLost(ctx, tx, "save", n.UUID)
	}
	if err != nil {
		return fmt.Errorf("sqlite: save node %s: %w", n.UUID, err)
	}
	var set []string
	var args []any
	for i, col := range nodeColumns {
		if !same[i] {
			set = append(set, col+" = ?")
			args = append(args, vals[i])
		}
	}
	if len(set) == 0 {
		return nil
	}
	_, err = tx.ExecContext(ctx, "UPDATE nodes SET "+strings.Join(set, ", ")+" WHERE uuid = ?", append(args, n.UUID)...)
	if c := nodeConflict(err, n); c != nil {
		return c
	}
	if err != nil {
		return fmt.Errorf("sqlite: save node %s: %w", n.UUID, err)
	}
	return nil
}

// lockLost explains why a write conditioned on owner's reservation matched no row.
func lockLost(ctx context.Context, tx *sql.Tx, verb, uuid string) error {
	var one int
	err := tx.QueryRowContext(ctx, "SELECT 1 FROM nodes WHERE uuid = ?", uuid).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return node.NotFound("Node", uuid)
	}
	if err != nil {
		return fmt.Errorf("sqlite: %s node %s: %w", verb, uuid, err)
	}
	return fmt.Errorf("%s node %s: %w", verb, uuid, node.ErrLockLost)
}

// DeleteNode removes a node reserved by owner, with its ports and portgroups. A node reserved
// by someone else, or by nobody, is node.ErrLockLost.
func (s *Store) DeleteNode(ctx context.Context, uuid, owner string) error {
	return s.write(ctx, "delete node", func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, "DELETE FROM nodes WHERE uuid = ? AND reservation = ? RETURNING id", uuid, owner).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return lockLost(ctx, tx, "delete", uuid)
		}
		if err != nil {
			return fmt.Errorf("sqlite: delete node %s: %w", uuid, err)
		}
		// Ports and portgroups go by ON DELETE CASCADE.
		s.nodes.Forget(id)
		return nil
	})
}

// ReserveNode takes the node's lock for owner until the given time, in one UPDATE that
// matches only a free or expired reservation. Locks are not re-entrant: an owner asking again
// for a lock it holds gets a *node.LockedError naming itself, like anyone else.
func (s *Store) ReserveNode(ctx context.Context, ident, owner string, until time.Time) (*node.Node, error) {
	if owner == "" || until.IsZero() {
		return nil, fmt.Errorf("sqlite: reserve node %s: owner and expiry are required", ident)
	}
	col := identColumn(ident)
	var n *node.Node
	err := s.write(ctx, "reserve node", func(tx *sql.Tx) error {
		var err error
		n, err = s.scanNode(tx.QueryRowContext(ctx, "UPDATE nodes SET reservation = ?, reservation_expires = ?"+
			" WHERE "+col+" = ? AND (reservation IS NULL OR reservation_expires < ?)"+
			" RETURNING id, reservation, reservation_expires, body",
			owner, micros(utc(until)), ident, time.Now().UnixMicro()))
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: reserve node %s: %w", ident, err)
		}
		var uuid string
		var holder sql.NullString
		err = tx.QueryRowContext(ctx, "SELECT uuid, reservation FROM nodes WHERE "+col+" = ?", ident).Scan(&uuid, &holder)
		if errors.Is(err, sql.ErrNoRows) {
			return node.NotFound("Node", ident)
		}
		if err != nil {
			return fmt.Errorf("sqlite: reserve node %s: %w", ident, err)
		}
		return &node.LockedError{Node: uuid, Holder: holder.String}
	})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// ReleaseNode drops owner's reservation of the node; a lock not held (or no such node) is
// not an error.
func (s *Store) ReleaseNode(ctx context.Context, uuid, owner string) error {
	return s.write(ctx, "release node", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE nodes SET reservation = NULL, reservation_expires = NULL WHERE uuid = ? AND reservation = ?", uuid, owner)
		if err != nil {
			return fmt.Errorf("sqlite: release node %s: %w", uuid, err)
		}
		return nil
	})
}

// RenewReservations moves the expiry of every reservation owner holds to until.
func (s *Store) RenewReservations(ctx context.Context, owner string, until time.Time) (int, error) {
	if until.IsZero() {
		return 0, errors.New("sqlite: renew reservations: expiry is required")
	}
	return s.updateReservations(ctx, "renew reservations",
		"UPDATE nodes SET reservation_expires = ? WHERE reservation = ?", micros(utc(until)), owner)
}

// ReleaseReservations drops every reservation owner holds.
func (s *Store) ReleaseReservations(ctx context.Context, owner string) (int, error) {
	return s.updateReservations(ctx, "release reservations",
		"UPDATE nodes SET reservation = NULL, reservation_expires = NULL WHERE reservation = ?", owner)
}

func (s *Store) updateReservations(ctx context.Context, what, query string, args ...any) (int, error) {
	var k int64
	err := s.write(ctx, what, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err == nil {
			k, err = res.RowsAffected()
		}
		if err != nil {
			return fmt.Errorf("sqlite: %s: %w", what, err)
		}
		return nil
	})
	return int(k), err
}
