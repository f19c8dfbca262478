package rpcserver

import (
	"context"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

// grpc's default limits on a received message, which the servers and the
// host's clients keep: a call through Conn is refused where the same call
// over the network would be.
const (
	maxServerReceive = 4 << 20 // grpc's defaultServerMaxReceiveMessageSize
	maxClientReceive = 4 << 20 // grpc's defaultClientMaxReceiveMessageSize
)

// local is what a Server keeps for the calls made through Conn.
type local struct {
	// methods are the unary methods registered, by full name
	// ("/golem_task_api.RequestorApp/Verify"); written by New only.
	methods map[string]localMethod
	// serviceNames are the services registered, streaming or not;
	// written by New only.
	serviceNames map[string]bool
	// calls counts the handlers of such calls still running: Stop waits
	// for them as grpc's GracefulStop waits for its own.
	calls sync.WaitGroup
	// ctx is the parent of every such handler's context; a forced stop
	// cancels it, as closing a connection cancels the calls on it.
	ctx    context.Context
	cancel context.CancelFunc
	// jobs hands a call to an idle worker (see localWorker); unbuffered,
	// so that a send succeeds only when one waits.
	jobs chan localJob
}

type localMethod struct {
	impl    any
	handler grpc.MethodHandler
}

func (l *local) init() {
	l.methods = map[string]localMethod{}
	l.serviceNames = map[string]bool{}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.jobs = make(chan localJob)
}

// registrar records the services New registers, for the grpc.Server once
// it is made, and their unary methods for Conn.
type registrar struct{ s *Server }

// service is one service registered.
type service struct {
	desc *grpc.ServiceDesc
	impl any
}

func (r registrar) RegisterService(desc *grpc.ServiceDesc, impl any) {
	r.s.services = append(r.s.services, service{desc, impl})
	r.s.local.serviceNames[desc.ServiceName] = true
	for _, m := range desc.Methods {
		r.s.local.methods["/"+desc.ServiceName+"/"+m.MethodName] = localMethod{impl: impl, handler: m.Handler}
	}
}

// Conn returns a connection that calls the server's unary methods (the
// app's services and health's Check) in this process, with no network and
// no transport security, for a host that runs the app inside itself. A
// call through it is what the same call over gRPC is, short of the
// transport:
//
//   - the request and the reply are encoded and decoded with the codecs
//     the two ends use on the wire (the client's strict one, the server's
//     lenient one), under grpc's default 4 MiB limits, so a message the
//     wire would refuse is refused with the same code;
//   - the handler runs behind the server's panic guard, and its error
//     reaches the caller as the status grpc would send;
//   - the handler runs on a goroutine of the server with the caller's
//     deadline, not its values; the caller's cancellation cancels it, and
//     the caller returns as soon as its context ends, as a client does,
//     whether or not the handler has returned;
//   - it is served from New until a stop begins: then new calls are
//     refused with codes.Unavailable, and calls in flight are waited for
//     by Stop like gRPC's, cancelled by a forced stop, which their callers
//     see as codes.Unavailable.
//
// Streaming methods (health's Watch, reflection) are not served: they
// answer codes.Unimplemented. Call options are ignored. The goroutines
// that run the handlers are kept between calls and end once the server has
// stopped: a server called through Conn must be stopped, as one serving a
// listener must.
func (s *Server) Conn() grpc.ClientConnInterface { return localConn{s} }

type localConn struct{ s *Server }

var _ grpc.ClientConnInterface = localConn{}

// localAnswer is what a handler's goroutine hands back: the encoded reply,
// or the status error the caller gets.
type localAnswer struct {
	reply mem.BufferSlice
	err   error
}

// Invoke makes one unary call in process (see Conn).
func (c localConn) Invoke(ctx context.Context, method string, args, reply any, _ ...grpc.CallOption) error {
	s := c.s
	// A client looks at its context before anything else.
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	m, ok := s.local.methods[method]
	if !ok {
		return s.local.unknownMethod(method)
	}
	hctx, end, err := s.enter(ctx)
	if err != nil {
		return err
	}
	codec := lenientCodec{}.base() // the client's codec
	req, err := codec.Marshal(args)
	if err != nil {
		end()
		return status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err.Error())
	}
	answer := make(chan localAnswer, 1) // never blocks the handler's goroutine
	job := localJob{ctx: hctx, m: m, req: req, end: end, answer: answer}
	// The handler runs on a goroutine of the server: enter counted the
	// call, Stop waits for it (and gives up on it, logged, as on a gRPC
	// handler deaf to its cancellation).
	select {
	case s.local.jobs <- job: // an idle worker took it
	default:
		go s.localWorker(job)
	}
	select {
	case a := <-answer:
		if a.err != nil {
			return a.err
		}
		defer a.reply.Free()
		if n := a.reply.Len(); n > maxClientReceive {
			return status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", n, maxClientReceive)
		}
		if err := codec.Unmarshal(a.reply, reply); err != nil {
			return status.Errorf(codes.Internal, "grpc: failed to unmarshal the received message: %v", err)
		}
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-s.local.ctx.Done():
		return status.Error(codes.Unavailable, "the server stopped during the call")
	}
}

// localJob is one call through Conn, for a handler goroutine.
type localJob struct {
	ctx    context.Context
	m      localMethod
	req    mem.BufferSlice
	end    func() // ends the call, once the handler has returned
	answer chan<- localAnswer
}

// localWorker runs job, then the jobs of later calls, until the server has
// stopped: a call then mostly finds a goroutine whose stack has grown
// already, instead of starting one and growing its stack every time, which
// costs more than a small handler. There are never more workers than calls
// ever ran at once; each ends once the server has stopped and its job is
// done.
func (s *Server) localWorker(job localJob) {
	for {
		job.answer <- s.serveLocal(job.ctx, job.m, job.req)
		job.end()
		select {
		case job = <-s.local.jobs:
		case <-s.stopped:
			return
		}
	}
}

// NewStream refuses every stream: no Task API method is one.
func (localConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, status.Error(codes.Unimplemented, "rpcserver: streams are not served in process")
}

// enter admits a call through Conn, unless a stop has begun, and returns
// the handler's context (the caller's deadline and cancellation, and the
// server's forced stop) and the function that ends the call.
func (s *Server) enter(ctx context.Context) (context.Context, func(), error) {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return nil, nil, status.Error(codes.Unavailable, "the server is stopping")
	}
	s.local.calls.Add(1)
	s.mu.Unlock()
	var (
		hctx   context.Context
		cancel context.CancelFunc
	)
	if d, ok := ctx.Deadline(); ok {
		hctx, cancel = context.WithDeadline(s.local.ctx, d)
	} else {
		hctx, cancel = context.WithCancel(s.local.ctx)
	}
	stop := context.AfterFunc(ctx, cancel)
	return hctx, func() {
		stop()
		cancel()
		s.local.calls.Done()
	}, nil
}

// serveLocal decodes req, runs m's handler behind the panic guard and
// encodes its reply, as the server's side of a call over gRPC does.
func (s *Server) serveLocal(ctx context.Context, m localMethod, req mem.BufferSlice) localAnswer {
	defer req.Free()
	if n := req.Len(); n > maxServerReceive {
		return localAnswer{err: status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", n, maxServerReceive)}
	}
	dec := func(v any) error {
		if err := (lenientCodec{}).Unmarshal(req, v); err != nil {
			return status.Errorf(codes.Internal, "grpc: failed to unmarshal the received message: %v", err)
		}
		return nil
	}
	resp, err := m.handler(m.impl, ctx, dec, s.recoverUnary)
	if err != nil {
		// What grpc's server sends for an error that is no status.
		st, ok := status.FromError(err)
		if !ok {
			st = status.FromContextError(err)
		}
		return localAnswer{err: st.Err()}
	}
	out, err := lenientCodec{}.Marshal(resp)
	if err != nil {
		return localAnswer{err: status.Errorf(codes.Internal, "grpc: error while marshaling: %v", err.Error())}
	}
	return localAnswer{reply: out}
}

// unknownMethod is grpc's answer to a method the server does not serve.
func (l *local) unknownMethod(method string) error {
	service, name, ok := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	if !ok {
		return status.Errorf(codes.Unimplemented, "malformed method name: %q", method)
	}
	known := l.serviceNames[service]
	if !known {
		return status.Errorf(codes.Unimplemented, "unknown service %v", service)
	}
	return status.Errorf(codes.Unimplemented, "unknown method %v for service %v", name, service)
}
