package postgres

import (
	"context"
	"errors"
	"fmt"
	"github.com/jackc/pgx/v5"
	"slices"
	"time"

	"github.com/ferrumhq/ferrum/controller/node"
)

const allocationColumns = "uuid, name, node_uuid, resource_class, traits, candidate_nodes, state," +
	" last_error, extra, owner, created_at, updated_at"

const allocationSelect = "SELECT id, " + allocationColumns + " FROM allocations"

// Allocations have no address, so that one of PortSortKeys is refused.
var allocationList = listSpec{table: "allocations", kind: "Allocation",
	keys: sortKeys(slices.DeleteFunc(slices.Clone(node.PortSortKeys), func(k string) bool { return k == "address" }),
		"name", "created_at", "updated_at")}

// allocationValues maps an allocation to its row, after normalizing a's times as stored.
func allocationValues(a *node.Allocation) ([]any, error) {
	a.CreatedAt, a.UpdatedAt = utc(a.CreatedAt), utc(a.UpdatedAt)
	traits, err1 := jsonList(a.Traits)
	cands, err2 := jsonList(a.CandidateNodes)
	extra, err3 := jsonObject(a.Extra)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("postgres: encode allocation %s: %w", a.UUID, err)
	}
	return []any{a.UUID, nullString(a.Name), a.NodeUUID, a.ResourceClass, traits, cands, a.State,
		a.LastError, extra, a.Owner, micros(a.CreatedAt), micros(a.UpdatedAt)}, nil
}

func scanAllocation(sc pgx.Row) (*node.Allocation, error) {
	var (
		a                    node.Allocation
		name                 *string
		traits, cands, extra string
		created, updated     *int64
	)
	if err := sc.Scan(&a.ID, &a.UUID, &name, &a.NodeUUID, &a.ResourceClass, &traits, &cands,
		&a.State, &a.LastError, &extra, &a.Owner, &created, &updated); err != nil {
		return nil, err
	}
	a.Name = str(name)
	a.CreatedAt, a.UpdatedAt = fromMicros(created), fromMicros(updated)
	if err := errors.Join(decodeJSON(traits, &a.Traits), decodeJSON(cands, &a.CandidateNodes),
		decodeJSON(extra, &a.Extra)); err != nil {
		return nil, fmt.Errorf("postgres: decode allocation %s: %w", a.UUID, err)
	}
	return &a, nil
}

func allocationError(verb string, a *node.Allocation, err error) error {
	switch uniqueViolation(err) {
	case "allocations.uuid":
		return node.Errorf(node.ErrConflict, "An allocation with UUID %s already exists.", a.UUID)
	case "allocations.name":
		return node.Errorf(node.ErrConflict, "An allocation with name %s already exists.", a.Name)
	}
	return fmt.Errorf("postgres: %s allocation %s: %w", verb, a.UUID, err)
}

// CreateAllocation inserts a and fills a.ID; a zero a.CreatedAt becomes now.
func (s *Store) CreateAllocation(ctx context.Context, a *node.Allocation) error {
	if a.CreatedAt.IsZero() {
		a.CreatedAt = time.Now()
	}
	vals, err := allocationValues(a)
	if err != nil {
		return err
	}
	return s.writeq(ctx, "create allocation", func(tx dbq) error {
		err := tx.QueryRowContext(ctx, "INSERT INTO allocations ("+allocationColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id", vals...).Scan(&a.ID)
		if err != nil {
			return allocationError("create", a, err)
		}
		return nil
	})
}

// GetAllocation finds an allocation by UUID, or by name when ident is not a UUID.
func (s *Store) GetAllocation(ctx context.Context, ident string) (*node.Allocation, error) {
	a, err := scanAllocation(s.r().QueryRowContext(ctx, allocationSelect+" WHERE "+identColumn(ident)+" = ?", ident))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, node.NotFound("Allocation", ident)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get allocation %s: %w", ident, err)
	}
	return a, nil
}

// ListAllocations returns the allocations matching q.
func (s *Store) ListAllocations(ctx context.Context, q node.AllocationQuery) ([]*node.Allocation, error) {
	var w where
	w.Eq("node_uuid", q.NodeUUID)
	w.Eq("resource_class", q.ResourceClass)
	w.Eq("state", q.State)
	w.Eq("owner", q.Owner)
	return list(ctx, s, allocationList, q.Page, &w, allocationSelect, scanAllocation)
}

// SaveAllocation writes every field of a (found by UUID) and sets a.UpdatedAt.
func (s *Store) SaveAllocation(ctx context.Context, a *node.Allocation) error {
	a.UpdatedAt = time.Now()
	vals, err := allocationValues(a)
	if err != nil {
		return err
	}
	return s.writeq(ctx, "save allocation", func(tx dbq) error {
		tag, err := tx.ExecContext(ctx, "UPDATE allocations SET ("+allocationColumns+") = (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) WHERE uuid = ?", append(vals, a.UUID)...)
		if err != nil {
			return allocationError("save", a, err)
		}
		return notFoundIfNone(tag, "Allocation", a.UUID)
	})
}

// DeleteAllocation removes an allocation.
func (s *Store) DeleteAllocation(ctx context.Context, uuid string) error {
	return s.writeq(ctx, "delete allocation", func(tx dbq) error {
		tag, err := tx.ExecContext(ctx, "DELETE FROM allocations WHERE uuid = ?", uuid)
		if err != nil {
			return fmt.Errorf("postgres: delete allocation %s: %w", uuid, err)
		}
		return notFoundIfNone(tag, "Allocation", uuid)
	})
}
