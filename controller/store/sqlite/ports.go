package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferrumhq/ferrum/controller/node"
	"github.com/ferrumhq/ferrum/controller/store/internal/sqlutil"
)

// The JSON column codecs shared with the other store.
var (
	jsonObject  = sqlutil.JSONObject
	jsonList    = sqlutil.JSONList
	jsonObjects = sqlutil.JSONObjects
	decodeJSON  = sqlutil.DecodeJSON
)

// exists reports whether table has a row with uuid.
func exists(ctx context.Context, tx *sql.Tx, table, uuid string) (bool, error) {
	var one int
	err := tx.QueryRowContext(ctx, "SELECT 1 FROM "+table+" WHERE uuid = ?", uuid).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// missingParent names the node or portgroup a failed foreign key of a port or portgroup
// points at, as a NotFound error.
func missingParent(ctx context.Context, tx *sql.Tx, nodeUUID, portgroupUUID string) error {
	ok, err := exists(ctx, tx, "nodes", nodeUUID)
	if err != nil {
		return err
	}
	if !ok {
		return node.NotFound("Node", nodeUUID)
	}
	if portgroupUUID != "" {
		if ok, err = exists(ctx, tx, "portgroups", portgroupUUID); err != nil {
			return err
		}
		if !ok {
			return node.NotFound("Portgroup", portgroupUUID)
		}
	}
	return nil
}

// ---- ports ----

const portColumns = "uuid, node_uuid, address, portgroup_uuid, name, pxe_enabled, local_link_connection," +
	" physical_network, extra, internal_info, is_smartnic, created_at, updated_at"

const portSelect = "SELECT id, " + portColumns + " FROM ports"

var portList = listSpec{table: "ports", kind: "Port",
	keys: sortKeys(node.PortSortKeys, "address", "name", "created_at", "updated_at")}

// portValues maps a port to its row, after normalizing p as stored: lower-case MAC, UTC
// microsecond times.
func portValues(p *node.Port) ([]any, error) {
	p.Address = strings.ToLower(p.Address)
	p.CreatedAt, p.UpdatedAt = utc(p.CreatedAt), utc(p.UpdatedAt)
	js, err := jsonObjects(p.LocalLinkConnection, p.Extra, p.InternalInfo)
	if err != nil {
		return nil, fmt.Errorf("sqlite: encode port %s: %w", p.UUID, err)
	}
	return []any{p.UUID, p.NodeUUID, nullString(p.Address), nullString(p.PortgroupUUID),
		nullString(p.Name), p.PXEEnabled, js[0], p.PhysicalNetwork, js[1], js[2], p.IsSmartNIC,
		micros(p.CreatedAt), micros(p.UpdatedAt)}, nil
}

func scanPort(sc scanner) (*node.Port, error) {
	var (
		p                node.Port
		addr, pg, name   sql.NullString
		llc, extra, info string
		created, updated sql.NullInt64
	)
	if err := sc.Scan(&p.ID, &p.UUID, &p.NodeUUID, &addr, &pg, &name, &p.PXEEnabled, &llc,
		&p.PhysicalNetwork, &extra, &info, &p.IsSmartNIC, &created, &updated); err != nil {
		return nil, err
	}
	p.Address, p.PortgroupUUID, p.Name = addr.String, pg.String, name.String
	p.CreatedAt, p.UpdatedAt = fromMicros(created), fromMicros(updated)
	if err := errors.Join(decodeJSON(llc, &p.LocalLinkConnection), decodeJSON(extra, &p.Extra),
		decodeJSON(info, &p.InternalInfo)); err != nil {
		return nil, fmt.Errorf("sqlite: decode port %s: %w", p.UUID, err)
	}
	return &p, nil
}

// portError maps a failed insert or update of p to the client-facing error, or wraps it.
func portError(ctx context.Context, tx *sql.Tx, verb string, p *node.Port, err error) error {
	switch uniqueViolation(err) {
	case "ports.uuid":
		return node.Errorf(node.ErrConflict, "A port with UUID %s already exists.", p.UUID)
	case "ports.address":
		return node.Errorf(node.ErrConflict, "A port with MAC address %s already exists.", p.Address)
	case "ports.name":
		return node.Errorf(node.ErrConflict, "A port with name %s already exists.", p.Name)
	}
	if isForeignKeyViolation(err) {
		if e := missingParent(ctx, tx, p.NodeUUID, p.PortgroupUUID); e != nil {
			return e
		}
	}
	return fmt.Errorf("sqlite: %s port %s: %w", verb, p.UUID, err)
}

// CreatePort inserts p and fills p.ID; the MAC address is stored lower-case (p is updated)
// and a zero p.CreatedAt becomes now.
func (s *Store) CreatePort(ctx context.Context, p *node.Port) error {
	if p.CreatedAt.IsZero() {
		p.CreatedAt = time.Now()
	}
	vals, err := portValues(p)
	if err != nil {
		return err
	}
	return s.write(ctx, "create port", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, "INSERT INTO ports ("+portColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id", vals...).Scan(&p.ID)
		if err != nil {
			return portError(ctx, tx, "create", p, err)
		}
		return nil
	})
}

// GetPort finds a port by UUID.
func (s *Store) GetPort(ctx context.Context, uuid string) (*node.Port, error) {
	p, err := scanPort(s.r.QueryRowContext(ctx, portSelect+" WHERE uuid = ?", uuid))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, node.NotFound("Port", uuid)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get port %s: %w", uuid, err)
	}
	return p, nil
}

// ListPorts returns the ports matching q; the address filter ignores case.
func (s *Store) ListPorts(ctx context.Context, q node.PortQuery) ([]*node.Port, error) {
	var w where
	w.Eq("node_uuid", q.NodeUUID)
	w.Eq("address", strings.ToLower(q.Address))
	w.Eq("portgroup_uuid", q.PortgroupUUID)
	return list(ctx, s, portList, q.Page, &w, portSelect, scanPort)
}

// SavePort writes every field of p (found by UUID) and sets p.UpdatedAt.
func (s *Store) SavePort(ctx context.Context, p *node.Port) error {
	p.UpdatedAt = time.Now()
	vals, err := portValues(p)
	if err != nil {
		return err
	}
	return s.write(ctx, "save port", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE ports SET ("+portColumns+") = (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) WHERE uuid = ?", append(vals, p.UUID)...)
		if err != nil {
			return portError(ctx, tx, "save", p, err)
		}
		return notFoundIfNone(res, "Port", p.UUID)
	})
}

// DeletePort removes a port.
func (s *Store) DeletePort(ctx context.Context, uuid string) error {
	return s.write(ctx, "delete port", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM ports WHERE uuid = ?", uuid)
		if err != nil {
			return fmt.Errorf("sqlite: delete port %s: %w", uuid, err)
		}
		return notFoundIfNone(res, "Port", uuid)
	})
}

// notFoundIfNone is NotFound(kind, ident) when res affected no row.
func notFoundIfNone(res sql.Result, kind, ident string) error {
	k, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: %s %s: %w", strings.ToLower(kind), ident, err)
	}
	if k == 0 {
		return node.NotFound(kind, ident)
	}
	return nil
}

// list runs a paged select and decodes its rows.
func list[T any](ctx context.Context, s *Store, spec listSpec, p node.Page, w *where, sel string, scan func(scanner) (T, error)) ([]T, error) {
	order, err := s.page(ctx, spec, p, w)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, sel+w.String()+order, w.Args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list %s: %w", spec.table, err)
	}
	defer rows.Close()
	out := make([]T, 0, max(p.Limit, 0))
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list %s: %w", spec.table, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list %s: %w", spec.table, err)
	}
	return out, nil
}

// ---- portgroups ----

const portgroupColumns = "uuid, node_uuid, name, address, mode, properties, extra, internal_info," +
	" standalone_ports_supported, created_at, updated_at"

const portgroupSelect = "SELECT id, " + portgroupColumns + " FROM portgroups"

var portgroupList = listSpec{table: "portgroups", kind: "Portgroup",
	keys: sortKeys(node.PortSortKeys, "address", "name", "created_at", "updated_at")}

// portgroupValues maps a portgroup to its row, after normalizing pg as stored.
func portgroupValues(pg *node.Portgroup) ([]any, error) {
	pg.Address = strings.ToLower(pg.Address)
	pg.CreatedAt, pg.UpdatedAt = utc(pg.CreatedAt), utc(pg.UpdatedAt)
	js, err := jsonObjects(pg.Properties, pg.Extra, pg.InternalInfo)
	if err != nil {
		return nil, fmt.Errorf("sqlite: encode portgroup %s: %w", pg.UUID, err)
	}
	return []any{pg.UUID, pg.NodeUUID, nullString(pg.Name), nullString(pg.Address), pg.Mode,
		js[0], js[1], js[2], pg.StandalonePortsSupported, micros(pg.CreatedAt), micros(pg.UpdatedAt)}, nil
}

func scanPortgroup(sc scanner) (*node.Portgroup, error) {
	var (
		pg                 node.Portgroup
		name, addr         sql.NullString
		props, extra, info string
		created, updated   sql.NullInt64
	)
	if err := sc.Scan(&pg.ID, &pg.UUID, &pg.NodeUUID, &name, &addr, &pg.Mode, &props, &extra,
		&info, &pg.StandalonePortsSupported, &created, &updated); err != nil {
		return nil, err
	}
	pg.Name, pg.Address = name.String, addr.String
	pg.CreatedAt, pg.UpdatedAt = fromMicros(created), fromMicros(updated)
	if err := errors.Join(decodeJSON(props, &pg.Properties), decodeJSON(extra, &pg.Extra),
		decodeJSON(info, &pg.InternalInfo)); err != nil {
		return nil, fmt.Errorf("sqlite: decode portgroup %s: %w", pg.UUID, err)
	}
	return &pg, nil
}

func portgroupError(ctx context.Context, tx *sql.Tx, verb string, pg *node.Portgroup, err error) error {
	switch uniqueViolation(err) {
	case "portgroups.uuid":
		return node.Errorf(node.ErrConflict, "A portgroup with UUID %s already exists.", pg.UUID)
	case "portgroups.name":
		return node.Errorf(node.ErrConflict, "A portgroup with name %s already exists.", pg.Name)
	case "portgroups.address":
		return node.Errorf(node.ErrConflict, "A portgroup with MAC address %s already exists.", pg.Address)
	}
	if isForeignKeyViolation(err) {
		if e := missingParent(ctx, tx, pg.NodeUUID, ""); e != nil {
			return e
		}
	}
	return fmt.Errorf("sqlite: %s portgroup %s: %w", verb, pg.UUID, err)
}

// CreatePortgroup inserts pg and fills pg.ID; the MAC address is stored lower-case and a
// zero pg.CreatedAt becomes now.
func (s *Store) CreatePortgroup(ctx context.Context, pg *node.Portgroup) error {
	if pg.CreatedAt.IsZero() {
		pg.CreatedAt = time.Now()
	}
	vals, err := portgroupValues(pg)
	if err != nil {
		return err
	}
	return s.write(ctx, "create portgroup", func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, "INSERT INTO portgroups ("+portgroupColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id", vals...).Scan(&pg.ID)
		if err != nil {
			return portgroupError(ctx, tx, "create", pg, err)
		}
		return nil
	})
}

// GetPortgroup finds a portgroup by UUID, or by name when ident is not a UUID.
func (s *Store) GetPortgroup(ctx context.Context, ident string) (*node.Portgroup, error) {
	pg, err := scanPortgroup(s.r.QueryRowContext(ctx, portgroupSelect+" WHERE "+identColumn(ident)+" = ?", ident))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, node.NotFound("Portgroup", ident)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get portgroup %s: %w", ident, err)
	}
	return pg, nil
}

// ListPortgroups returns the portgroups matching q; the address filter ignores case.
func (s *Store) ListPortgroups(ctx context.Context, q node.PortgroupQuery) ([]*node.Portgroup, error) {
	var w where
	w.Eq("node_uuid", q.NodeUUID)
	w.Eq("address", strings.ToLower(q.Address))
	return list(ctx, s, portgroupList, q.Page, &w, portgroupSelect, scanPortgroup)
}

// SavePortgroup writes every field of pg (found by UUID) and sets pg.UpdatedAt.
func (s *Store) SavePortgroup(ctx context.Context, pg *node.Portgroup) error {
	pg.UpdatedAt = time.Now()
	vals, err := portgroupValues(pg)
	if err != nil {
		return err
	}
	return s.write(ctx, "save portgroup", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE portgroups SET ("+portgroupColumns+") = (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) WHERE uuid = ?", append(vals, pg.UUID)...)
		if err != nil {
			return portgroupError(ctx, tx, "save", pg, err)
		}
		return notFoundIfNone(res, "Portgroup", pg.UUID)
	})
}

// DeletePortgroup removes a portgroup that no port belongs to; one with ports is refused
// with ErrInvalid, as Ironic's PortgroupNotEmpty.
func (s *Store) DeletePortgroup(ctx context.Context, uuid string) error {
	return s.write(ctx, "delete portgroup", func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, "SELECT 1 FROM ports WHERE portgroup_uuid = ? LIMIT 1", uuid).Scan(&one)
		if err == nil {
			return node.Errorf(node.ErrInvalid, "Cannot complete the requested action because portgroup %s contains ports.", uuid)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: delete portgroup %s: %w", uuid, err)
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM portgroups WHERE uuid = ?", uuid)
		if err != nil {
			return fmt.Errorf("sqlite: delete portgroup %s: %w", uuid, err)
		}
		return notFoundIfNone(res, "Portgroup", uuid)
	})
}
