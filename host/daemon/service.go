package daemon

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
	"github.com/gtask/gtask/taskapi"
)

// Limits of the API.
const (
	// chunkSize bounds the data of one message of a stream.
	chunkSize = 64 << 10
	// defaultPageSize and maxPageSize bound a page of ListTasks.
	defaultPageSize = 100
	maxPageSize     = 1000
	// watchBatch bounds the events one read of the store sends to a
	// watcher, and watchScan the events one read of a tree watch looks
	// at, so that a read transaction stays short.
	watchBatch = 512
	watchScan  = 8192
	// logPoll is how often a followed log is looked at for growth.
	logPoll = 100 * time.Millisecond
)

// service is the daemon's HostService.
type service struct {
	hostv1.UnimplementedHostServiceServer
	d *Daemon
}

var errClosing = status.Error(codes.Unavailable, "the daemon is stopping")

// begin admits a call and authenticates its caller; end must follow when
// err is nil.
func (s *service) begin(ctx context.Context) (caller, func(), error) {
	if !s.d.enter() {
		return caller{}, nil, errClosing
	}
	c, err := s.d.authenticate(ctx)
	if err != nil {
		s.d.leave()
		return caller{}, nil, err
	}
	return c, s.d.leave, nil
}

func internal(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, errStoreClosed) {
		return errClosing
	}
	return status.Error(codes.Internal, err.Error())
}

// plainName checks a file name that must not be a path.
func plainName(what, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, 0) {
		return status.Errorf(codes.InvalidArgument, "%s %q: want a plain file name, no path", what, name)
	}
	return nil
}

func (s *service) CreateTask(ctx context.Context, req *hostv1.CreateTaskRequest) (*hostv1.CreateTaskResponse, error) {
	c, end, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	d := s.d

	t := &taskRec{
		App: req.GetApp(), Runtime: req.GetRuntime(), Owner: c.user, Params: req.GetParamsJson(),
		MaxSubtasks: req.GetMaxSubtasks(), Providers: req.GetProviders(), MaxAttempts: req.GetMaxAttempts(),
		NoBackups: req.GetNoBackups(),
		Timeout:   req.GetTimeout().AsDuration(), SubtaskTimeout: req.GetSubtaskTimeout().AsDuration(),
		State: hostv1.TaskState_TASK_STATE_QUEUED,
	}
	if err := validate(t, req); err != nil {
		return nil, err
	}
	for {
		t.ID = "t-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
		if taskapi.ValidateID("task_id", t.ID) == nil {
			break
		}
	}
	inputs, err := d.stage(c, t.ID, req.GetInputs())
	if err != nil {
		_ = os.RemoveAll(d.stagedDir(t.ID))
		return nil, err
	}
	t.Inputs = inputs

	d.mu.Lock()
	hook := d.hooks.afterStage
	d.mu.Unlock()
	if hook != nil {
		hook()
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		_ = os.RemoveAll(d.stagedDir(t.ID))
		return nil, errClosing
	}
	t.Parent = req.GetParentId()
	if t.Parent == "" {
		t.Parent = c.family
	}
	t.Created = time.Now().UTC()
	err = d.w.update(func(tx *bolt.Tx) error {
		// An upload staged above may have been swept since: the task is
		// stored only if each of its uploads still is, in this commit, so
		// that it never lacks an input (see sweepUploads).
		for i, in := range t.Inputs {
			if up, ok := strings.CutPrefix(in.Source, "upload:"); ok {
				rec, err := getJSON[uploadRec](tx.Bucket(bUploads), []byte(up))
				if errors.Is(err, errNotFound) || (err == nil && rec.User != c.user) {
					return d.noUpload(i, up)
				}
				if err != nil {
					return err
				}
			}
		}
		if t.Parent != "" {
			p, err := c.task(tx, t.Parent)
			if status.Code(err) == codes.NotFound {
				return status.Errorf(codes.InvalidArgument, "parent_id: no task %s", t.Parent)
			}
			if err != nil {
				return err
			}
			if ended(p.State) || d.dying[p.ID] || p.Killing != "" {
				state := p.State
				if !ended(state) {
					state = hostv1.TaskState_TASK_STATE_KILLED
				}
				return status.Errorf(codes.FailedPrecondition, "parent task %s is %s: it takes no more children", p.ID, stateName(state))
			}
			p.Children = append(p.Children, t.ID)
			if err := putTask(tx, p); err != nil {
				return err
			}
		}
		seq, err := tx.Bucket(bTasks).NextSequence()
		if err != nil {
			return err
		}
		t.Seq = seq
		if err := tx.Bucket(bOrder).Put(u64(seq), []byte(t.ID)); err != nil {
			return err
		}
		if err := putTask(tx, t); err != nil {
			return err
		}
		return appendEvent(tx, daemonEvent(t, KindQueued, "created by "+c.String(), t.Created))
	})
	if err != nil {
		_ = os.RemoveAll(d.stagedDir(t.ID))
		return nil, internal(err)
	}
	d.log.Info("task created", "task", t.ID, "app", t.App, "owner", t.Owner, "parent", t.Parent)
	d.launch(t)
	return &hostv1.CreateTaskResponse{Task: d.taskProto(t)}, nil
}

// validate checks what CreateTask can check without the store.
func validate(t *taskRec, req *hostv1.CreateTaskRequest) error {
	bad := func(format string, args ...any) error {
		return status.Errorf(codes.InvalidArgument, format, args...)
	}
	if t.App == "" {
		return bad("app is required")
	}
	if t.Params != "" && !json.Valid([]byte(t.Params)) {
		return bad("params_json is not JSON")
	}
	switch t.Runtime {
	case hostv1.Runtime_RUNTIME_UNSPECIFIED, hostv1.Runtime_RUNTIME_PROCESS:
		t.Runtime = hostv1.Runtime_RUNTIME_PROCESS
		if _, err := os.Stat(t.App); err != nil {
			return bad("app %s: %v", t.App, unwrapPath(err))
		}
	case hostv1.Runtime_RUNTIME_DOCKER:
	default:
		return bad("runtime %d is unknown", t.Runtime)
	}
	if t.MaxSubtasks < 0 || t.Providers < 0 || t.MaxAttempts < 0 {
		return bad("max_subtasks, providers and max_attempts must not be negative")
	}
	if t.Timeout < 0 || t.SubtaskTimeout < 0 {
		return bad("timeout and subtask_timeout must not be negative")
	}
	names := map[string]bool{}
	for i, in := range req.GetInputs() {
		if err := plainName(fmt.Sprintf("inputs[%d].name", i), in.GetName()); err != nil {
			return err
		}
		if names[in.GetName()] {
			return bad("inputs[%d].name %q: two inputs have that name", i, in.GetName())
		}
		names[in.GetName()] = true
		if in.GetUploadId() == "" && in.GetPath() == "" {
			return bad("inputs[%d]: upload_id or path is required", i)
		}
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func stateName(s hostv1.TaskState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "TASK_STATE_"))
}

// stage copies the inputs of task id into its staged dir, each under its
// name: the task runs with what the inputs were when it was created,
// after a restart too.
func (d *Daemon) stage(c caller, id string, inputs []*hostv1.Input) ([]inputRec, error) {
	if len(inputs) == 0 {
		return nil, nil
	}
	dir := d.stagedDir(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, internal(err)
	}
	out := make([]inputRec, 0, len(inputs))
	for i, in := range inputs {
		dst := filepath.Join(dir, in.GetName())
		var src, source string
		if up := in.GetUploadId(); up != "" {
			var rec *uploadRec
			err := d.db.View(func(tx *bolt.Tx) (err error) {
				rec, err = getJSON[uploadRec](tx.Bucket(bUploads), []byte(up))
				return err
			})
			if errors.Is(err, errNotFound) || (err == nil && rec.User != c.user) {
				return nil, d.noUpload(i, up)
			}
			if err != nil {
				return nil, internal(err)
			}
			src, source = d.uploadPath(up), "upload:"+up
			// An upload does not change: a link is as good as a copy.
			if err := os.Link(src, dst); err == nil {
				out = append(out, inputRec{Name: in.GetName(), Staged: dst, Source: source})
				continue
			}
		} else {
			src, source = in.GetPath(), in.GetPath()
			if !filepath.IsAbs(src) {
				return nil, status.Errorf(codes.InvalidArgument, "inputs[%d].path %s: want an absolute path on the daemon's machine", i, src)
			}
			fi, err := os.Stat(src)
			if err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "inputs[%d].path %s: %v", i, src, unwrapPath(err))
			}
			if !fi.Mode().IsRegular() {
				return nil, status.Errorf(codes.InvalidArgument, "inputs[%d].path %s is not a regular file", i, src)
			}
		}
		if err := copyFile(src, dst); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "inputs[%d] %s: %v", i, source, unwrapPath(err))
		}
		out = append(out, inputRec{Name: in.GetName(), Staged: dst, Source: source})
	}
	return out, nil
}

// noUpload is CreateTask's answer for inputs[i], upload id, which the
// caller does not have.
func (d *Daemon) noUpload(i int, id string) error {
	if d.cfg.UploadTTL < 0 {
		return status.Errorf(codes.InvalidArgument, "inputs[%d]: no upload %s of yours", i, id)
	}
	return status.Errorf(codes.InvalidArgument,
		"inputs[%d]: no upload %s of yours: unknown, or removed (uploads are kept %s after their upload): upload the file again",
		i, id, d.cfg.UploadTTL)
}

// taskProto is t as the API says it.
func (d *Daemon) taskProto(t *taskRec) *hostv1.Task {
	p := &hostv1.Task{
		TaskId: t.ID, App: t.App, State: t.State, Reason: t.Reason, ParentId: t.Parent,
		Owner: t.Owner, Runtime: t.Runtime, CreateTime: timestamppb.New(t.Created),
		Progress: t.Progress.proto(), ChildIds: slices.Clone(t.Children), ParamsJson: t.Params,
		Outputs: slices.Clone(t.Outputs), Starts: t.Starts,
	}
	if !t.Started.IsZero() {
		p.StartTime = timestamppb.New(t.Started)
	}
	if !t.Ended.IsZero() {
		p.EndTime = timestamppb.New(t.Ended)
	}
	if ents, err := os.ReadDir(filepath.Join(d.taskDir(t.ID), "logs")); err == nil {
		for _, e := range ents {
			if name, ok := strings.CutSuffix(e.Name(), ".log"); ok && e.Type().IsRegular() && validRun(name) {
				p.Runs = append(p.Runs, name)
			}
		}
	}
	return p
}

func (s *service) GetTask(ctx context.Context, req *hostv1.GetTaskRequest) (*hostv1.GetTaskResponse, error) {
	c, end, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	var t *taskRec
	err = s.d.db.View(func(tx *bolt.Tx) (err error) {
		t, err = c.task(tx, req.GetTaskId())
		return err
	})
	if err != nil {
		return nil, internal(err)
	}
	return &hostv1.GetTaskResponse{Task: s.d.taskProto(t)}, nil
}

func (s *service) ListTasks(ctx context.Context, req *hostv1.ListTasksRequest) (*hostv1.ListTasksResponse, error) {
	c, end, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, status.Error(codes.InvalidArgument, "page_size must not be negative")
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	var before []byte // the page starts before this key
	if tok := req.GetPageToken(); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(raw) != 8 {
			return nil, status.Error(codes.InvalidArgument, "page_token is not one of ours")
		}
		before = raw
	}
	match := func(tx *bolt.Tx, t *taskRec) (bool, error) {
		if len(req.GetStates()) > 0 && !slices.Contains(req.GetStates(), t.State) {
			return false, nil
		}
		if req.GetApp() != "" && t.App != req.GetApp() {
			return false, nil
		}
		if req.GetParentId() != "" && t.Parent != req.GetParentId() {
			return false, nil
		}
		if c.admin {
			return true, nil
		}
		if t.Owner != c.user {
			return false, nil
		}
		if c.family != "" {
			return inTree(tx, c.family, t.ID)
		}
		return true, nil
	}
	var page []*taskRec
	var next string
	err = s.d.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bOrder).Cursor()
		var k, v []byte
		if before == nil {
			k, v = cur.Last()
		} else {
			k, v = cur.Seek(before)
			if k == nil {
				k, v = cur.Last()
			}
			for k != nil && string(k) >= string(before) {
				k, v = cur.Prev()
			}
		}
		for ; k != nil; k, v = cur.Prev() {
			t, err := getTask(tx, string(v))
			if err != nil {
				return err
			}
			ok, err := match(tx, t)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if len(page) == size {
				// One more matches: there is a next page.
				next = base64.RawURLEncoding.EncodeToString(u64(page[len(page)-1].Seq))
				return nil
			}
			page = append(page, t)
		}
		return nil
	})
	if err != nil {
		return nil, internal(err)
	}
	resp := &hostv1.ListTasksResponse{NextPageToken: next}
	for _, t := range page {
		resp.Tasks = append(resp.Tasks, s.d.taskProto(t))
	}
	return resp, nil
}

func (s *service) WatchTask(req *hostv1.WatchTaskRequest, stream grpc.ServerStreamingServer[hostv1.WatchTaskResponse]) error {
	ctx := stream.Context()
	c, end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	d := s.d
	id := req.GetTaskId()
	if req.GetCursor() < 0 {
		return status.Error(codes.InvalidArgument, "cursor must not be negative")
	}
	err = d.db.View(func(tx *bolt.Tx) error {
		_, err := c.task(tx, id)
		return err
	})
	if err != nil {
		return internal(err)
	}
	// pos is how far the events were read: past the cursor of the last
	// event sent when a tree watch skipped other tasks' events.
	pos := uint64(req.GetCursor())
	// readState: a watch of one task reads the task's record (JSON) to
	// know whether it has ended only when it may have. A task ends in the
	// transaction that stores its task_ended, whose state is the end's, so
	// until the watch has read an event with an ended state, the task has
	// not ended in what it read; a watch of a busy task is woken by every
	// commit, and decoding the record at each was half of its cost. The
	// first read looks anyway (the cursor may be past the end), and so
	// does every read while the cursor is beyond the last event stored,
	// where the task's next events would land below it.
	readState := true
	for {
		wake := d.bc.wait()
		var evs []*hostv1.Event
		var done, more bool
		err := d.db.View(func(tx *bolt.Tx) error {
			evs, done, more = nil, true, false
			if !req.GetTree() {
				err := taskEvents(tx, id, pos, func(ev *hostv1.Event) bool {
					evs = append(evs, ev)
					pos = uint64(ev.Cursor)
					readState = readState || ended(ev.State)
					more = len(evs) == watchBatch
					return !more
				})
				if err != nil || !readState {
					done = false
					return err
				}
				t, err := getTask(tx, id)
				if err != nil {
					return err
				}
				done = ended(t.State)
				readState = done || pos > tx.Bucket(bEvents).Sequence()
				return nil
			}
			tree, err := subtree(tx, id)
			if err != nil {
				return err
			}
			members := map[string]bool{}
			for _, t := range tree {
				if !c.admin && t.Owner != c.user {
					continue
				}
				members[t.ID] = true
				if !ended(t.State) {
					done = false
				}
			}
			scanned := 0
			return allEvents(tx, pos, func(ev *hostv1.Event) bool {
				pos = uint64(ev.Cursor)
				if members[ev.TaskId] {
					evs = append(evs, ev)
				}
				scanned++
				more = len(evs) == watchBatch || scanned == watchScan
				return !more
			})
		})
		if err != nil {
			return internal(err)
		}
		for _, ev := range evs {
			if err := stream.Send(&hostv1.WatchTaskResponse{Event: ev}); err != nil {
				return err
			}
		}
		if more {
			continue
		}
		if done {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return status.FromContextError(context.Cause(ctx)).Err()
		case <-d.closed:
			return errClosing
		}
	}
}

// runName is a run's name: the requestor's, or a provider's (its
// subtask id).
var runName = regexp.MustCompile(`^provider-[A-Za-z0-9][A-Za-z0-9._-]*$`)

func validRun(name string) bool {
	return name == "requestor" || (runName.MatchString(name) && !strings.Contains(name, ".."))
}

func (s *service) GetRunLogs(req *hostv1.GetRunLogsRequest, stream grpc.ServerStreamingServer[hostv1.GetRunLogsResponse]) error {
	ctx := stream.Context()
	c, end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	d := s.d
	if !validRun(req.GetRun()) {
		return status.Errorf(codes.InvalidArgument, `run %q: want "requestor" or "provider-SUBTASK" (see Task.runs)`, req.GetRun())
	}
	if req.GetOffset() < 0 {
		return status.Error(codes.InvalidArgument, "offset must not be negative")
	}
	id := req.GetTaskId()
	isEnded := func() (bool, error) {
		var t *taskRec
		err := d.db.View(func(tx *bolt.Tx) (err error) {
			t, err = c.task(tx, id)
			return err
		})
		if err != nil {
			return false, internal(err)
		}
		return ended(t.State), nil
	}
	if _, err := isEnded(); err != nil {
		return err
	}
	path := filepath.Join(d.taskDir(id), "logs", req.GetRun()+".log")
	off := req.GetOffset()
	buf := make([]byte, chunkSize)
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		over, err := isEnded()
		if err != nil {
			return err
		}
		if f == nil {
			f, err = os.Open(path)
			switch {
			case errors.Is(err, os.ErrNotExist) && (!req.GetFollow() || over):
				return status.Errorf(codes.NotFound, "task %s has no run %s", id, req.GetRun())
			case errors.Is(err, os.ErrNotExist):
				f = nil
			case err != nil:
				return internal(err)
			}
		}
		if f != nil {
			for {
				n, err := f.ReadAt(buf, off)
				if n > 0 {
					if err := stream.Send(&hostv1.GetRunLogsResponse{Data: buf[:n], Offset: off}); err != nil {
						return err
					}
					off += int64(n)
				}
				if err == io.EOF || n == 0 {
					break
				}
				if err != nil {
					return internal(err)
				}
			}
		}
		if !req.GetFollow() || over {
			return nil
		}
		select {
		case <-time.After(logPoll):
		case <-ctx.Done():
			return status.FromContextError(context.Cause(ctx)).Err()
		case <-d.closed:
			return errClosing
		}
	}
}

func (s *service) KillTask(ctx context.Context, req *hostv1.KillTaskRequest) (*hostv1.KillTaskResponse, error) {
	c, end, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	killed, err := s.d.kill(c, req.GetTaskId())
	if err != nil {
		return nil, internal(err)
	}
	return &hostv1.KillTaskResponse{KilledTaskIds: killed}, nil
}

// kill kills task id's tree for c: marks every live task of it dying
// (no child may be created under them from then on) and stores that
// intent, ends their runs, waits for every run to be over, and stores
// them KILLED. A daemon stopped after the intent was stored finishes the
// kill at its next Start (see finishKills).
func (d *Daemon) kill(c caller, id string) ([]string, error) {
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		return nil, errClosing
	}
	var victims []*taskRec
	err := d.db.View(func(tx *bolt.Tx) error {
		if _, err := c.task(tx, id); err != nil {
			return err
		}
		tree, err := subtree(tx, id)
		if err != nil {
			return err
		}
		for _, t := range tree {
			if !ended(t.State) && !d.dying[t.ID] {
				victims = append(victims, t)
			}
		}
		return nil
	})
	if err != nil {
		d.mu.Unlock()
		return nil, err
	}
	reasons := make(map[string]string, len(victims))
	for _, t := range victims {
		reasons[t.ID] = "killed by " + c.String()
		if t.ID != id {
			reasons[t.ID] = fmt.Sprintf("its parent %s was killed", t.Parent)
		}
	}
	// The intent, on disk before any run is touched, d.mu held so that no
	// child is created under a victim meanwhile.
	if len(victims) > 0 {
		err = d.w.update(func(tx *bolt.Tx) error {
			for _, v := range victims {
				t, err := getTask(tx, v.ID)
				if err != nil {
					return err
				}
				if ended(t.State) {
					continue
				}
				t.Killing = reasons[t.ID]
				if err := putTask(tx, t); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			d.mu.Unlock()
			return nil, fmt.Errorf("storing the kill of task %s: %w", id, err)
		}
	}
	var runs []*taskRun
	for _, t := range victims {
		d.dying[t.ID] = true
		if r := d.runs[t.ID]; r != nil {
			runs = append(runs, r)
		}
	}
	hook := d.hooks.afterKillIntent
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		for _, t := range victims {
			delete(d.dying, t.ID)
		}
		d.mu.Unlock()
	}()
	if hook != nil {
		hook()
	}

	for _, r := range runs {
		r.stop(errKilled)
	}
	for _, r := range runs {
		<-r.done
	}
	var killed []string
	err = d.w.update(func(tx *bolt.Tx) error {
		killed = killed[:0]
		now := time.Now().UTC()
		for _, v := range victims {
			t, err := getTask(tx, v.ID)
			if err != nil {
				return err
			}
			if ended(t.State) {
				continue // it ended by itself meanwhile
			}
			if err := killedTask(tx, t, reasons[t.ID], now); err != nil {
				return err
			}
			killed = append(killed, t.ID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	d.log.Info("tree killed", "task", id, "by", c.String(), "killed", killed)
	return killed, nil
}

func (s *service) GetResults(req *hostv1.GetResultsRequest, stream grpc.ServerStreamingServer[hostv1.GetResultsResponse]) error {
	ctx := stream.Context()
	c, end, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	var t *taskRec
	err = s.d.db.View(func(tx *bolt.Tx) (err error) {
		t, err = c.task(tx, req.GetTaskId())
		return err
	})
	if err != nil {
		return internal(err)
	}
	if t.State != hostv1.TaskState_TASK_STATE_FINISHED {
		return status.Errorf(codes.FailedPrecondition, "task %s is %s, not finished: it has no results", t.ID, stateName(t.State))
	}
	dir := filepath.Join(s.d.taskDir(t.ID), "requestor", t.ID, taskapi.TaskOutputsDir())
	buf := make([]byte, chunkSize)
	for _, name := range t.Outputs {
		if !filepath.IsLocal(name) {
			return status.Errorf(codes.Internal, "output %q is not inside task_outputs", name)
		}
		if err := sendFile(stream, filepath.Join(dir, name), filepath.ToSlash(name), buf, s.d.closed); err != nil {
			return err
		}
	}
	return nil
}

func sendFile(stream grpc.ServerStreamingServer[hostv1.GetResultsResponse], path, name string, buf []byte, closed <-chan struct{}) error {
	f, err := os.Open(path)
	if err != nil {
		return internal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return internal(err)
	}
	size := fi.Size()
	var off int64
	for {
		select {
		case <-closed:
			return errClosing
		default:
		}
		n, err := io.ReadFull(f, buf)
		if n > 0 || off == 0 {
			if err := stream.Send(&hostv1.GetResultsResponse{Name: name, Size: size, Offset: off, Data: buf[:n]}); err != nil {
				return err
			}
			off += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return internal(err)
		}
	}
}

func (s *service) UploadInput(stream grpc.ClientStreamingServer[hostv1.UploadInputRequest, hostv1.UploadInputResponse]) error {
	c, end, err := s.begin(stream.Context())
	if err != nil {
		return err
	}
	defer end()
	d := s.d
	first, err := stream.Recv()
	if err == io.EOF {
		return status.Error(codes.InvalidArgument, "an upload needs a first message naming the file")
	}
	if err != nil {
		return err
	}
	if err := plainName("name", first.GetName()); err != nil {
		return err
	}
	rec := uploadRec{ID: "u-" + strings.ReplaceAll(uuid.NewString(), "-", ""), User: c.user, Name: first.GetName()}
	path := d.uploadPath(rec.ID)
	tmp := path + ".part"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return internal(err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	for msg := first; ; {
		if len(msg.GetData()) > 0 {
			n, err := f.Write(msg.GetData())
			rec.Size += int64(n)
			if err != nil {
				return internal(err)
			}
		}
		msg, err = stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if msg.GetName() != "" && msg.GetName() != rec.Name {
			return status.Error(codes.InvalidArgument, "only the first message names the file")
		}
	}
	if err := f.Sync(); err != nil {
		return internal(err)
	}
	if err := f.Close(); err != nil {
		return internal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return internal(err)
	}
	ok = true
	rec.Created = time.Now().UTC()
	err = d.w.update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(bUploads), []byte(rec.ID), &rec) })
	if err != nil {
		os.Remove(path)
		return internal(err)
	}
	return stream.SendAndClose(&hostv1.UploadInputResponse{UploadId: rec.ID, Size: rec.Size})
}

func (s *service) CreateToken(ctx context.Context, req *hostv1.CreateTokenRequest) (*hostv1.CreateTokenResponse, error) {
	c, end, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	if !c.admin {
		return nil, status.Error(codes.PermissionDenied, "only an admin token creates tokens")
	}
	if req.GetUser() == "" {
		return nil, status.Error(codes.InvalidArgument, "user is required")
	}
	tok, err := s.d.CreateToken(req.GetUser(), req.GetAdmin())
	if err != nil {
		return nil, internal(err)
	}
	return &hostv1.CreateTokenResponse{Token: tok, User: req.GetUser()}, nil
}
