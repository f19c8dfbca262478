package daemon

import (
	"context"
	"errors"
	"strings"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
)

// caller is who makes a call, as its token says.
type caller struct {
	user  string
	admin bool
	// family is the task of a family token: the caller acts within its
	// tree only.
	family string
}

func (c caller) String() string {
	if c.family != "" {
		return c.user + " (task " + c.family + ")"
	}
	return c.user
}

// authenticate finds the caller of ctx's call from its "authorization:
// Bearer TOKEN" metadata.
func (d *Daemon) authenticate(ctx context.Context) (caller, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	var token string
	for _, v := range md.Get("authorization") {
		if t, ok := strings.CutPrefix(v, "Bearer "); ok {
			token = strings.TrimSpace(t)
			break
		}
	}
	if token == "" {
		return caller{}, status.Error(codes.Unauthenticated, `no token: send "authorization: Bearer TOKEN"`)
	}
	var rec *tokenRec
	var gone *taskRec // the ended task of a family token
	err := d.db.View(func(tx *bolt.Tx) (err error) {
		rec, err = lookupToken(tx, token)
		if errors.Is(err, errNotFound) {
			// Deleted when its task ended?
			if id := tx.Bucket(bEndedTokens).Get(hashToken(token)); id != nil {
				gone, err = getTask(tx, string(id))
				if errors.Is(err, errNotFound) {
					gone, err = &taskRec{ID: string(id)}, nil
				}
				return err
			}
			return errNotFound
		}
		if err != nil || rec.Task == "" {
			return err
		}
		// An older gtask kept family tokens after their task ended.
		t, err := getTask(tx, rec.Task)
		switch {
		case errors.Is(err, errNotFound):
			gone, err = &taskRec{ID: rec.Task}, nil
		case err == nil && ended(t.State):
			gone = t
		}
		return err
	})
	if errors.Is(err, errNotFound) {
		return caller{}, status.Error(codes.Unauthenticated, "unknown token")
	}
	if err != nil {
		return caller{}, status.Errorf(codes.Internal, "reading tokens: %v", err)
	}
	if gone != nil {
		return caller{}, familyEnded(gone)
	}
	return caller{user: rec.User, admin: rec.Admin, family: rec.Task}, nil
}

// familyEnded is the answer to a family token of task t, which has ended:
// UNAUTHENTICATED, as for an expired token, since the token itself is no
// longer valid, whatever the call; PERMISSION_DENIED would say that the
// token is good but may not do this.
func familyEnded(t *taskRec) error {
	how := "has ended"
	if t.State != hostv1.TaskState_TASK_STATE_UNSPECIFIED {
		how += " (" + stateName(t.State) + ")"
	}
	return status.Errorf(codes.Unauthenticated,
		"the family token of task %s is no longer valid: the task %s, and a family token acts only while its task runs; "+
			"use a user's token (GTASK_TOKEN) instead", t.ID, how)
}

// visible answers nil when c may see task t: NOT_FOUND for another user's
// task (as if it did not exist), PERMISSION_DENIED for a family token's
// task outside its tree.
func (c caller) visible(tx *bolt.Tx, t *taskRec) error {
	if c.admin {
		return nil
	}
	if t.Owner != c.user {
		return status.Errorf(codes.NotFound, "no task %s", t.ID)
	}
	if c.family == "" {
		return nil
	}
	ok, err := inTree(tx, c.family, t.ID)
	if err != nil {
		return status.Errorf(codes.Internal, "task %s: %v", t.ID, err)
	}
	if !ok {
		return status.Errorf(codes.PermissionDenied, "task %s is outside the tree of task %s, where this token acts", t.ID, c.family)
	}
	return nil
}

// task reads task id for c: NOT_FOUND when it does not exist or c may not
// know it, PERMISSION_DENIED outside a family token's tree.
func (c caller) task(tx *bolt.Tx, id string) (*taskRec, error) {
	if id == "" {
		return nil, status.Error(codes.InvalidArgument, "task_id is required")
	}
	t, err := getTask(tx, id)
	if errors.Is(err, errNotFound) {
		return nil, status.Errorf(codes.NotFound, "no task %s", id)
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "task %s: %v", id, err)
	}
	if err := c.visible(tx, t); err != nil {
		return nil, err
	}
	return t, nil
}
