package docker

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The layout of an image BuildImage makes. The launcher relies on it; an
// image made otherwise works as long as its entrypoint is the app.
const (
	// AppPath is the app's binary in the image, and its entrypoint: a
	// container runs `/app requestor PORT` or `/app provider PORT`.
	AppPath = "/app"
	// WorkDir is the app's work dir, and the image's working directory:
	// where an app looks for the Task API's files when it is given none.
	WorkDir = "/golem/work"
	// ImageUser is the user an image's containers run as: numeric, since
	// the image has no /etc/passwd to look a name up in, and not root.
	// WorkDir belongs to it.
	ImageUser = "65532:65532"
	// LabelApp is the label that names the app an image holds; gtask finds
	// its images by it.
	LabelApp = "io.gtask.app"
)

// imageUID is ImageUser's user and group id, as a number for the layer.
const imageUID = 65532

// The errors of this package's image functions; each is wrapped with a
// message that says what was wrong with what, and what to do.
var (
	// ErrBadBinary: the file given to BuildImage cannot run in an image
	// built from scratch (not a Linux ELF executable, dynamically linked,
	// or built for another architecture than the engine's).
	ErrBadBinary = errors.New("not a binary an image can run")
	// ErrBadRef: an image reference that does not parse, or names a
	// digest where a NAME:TAG is needed.
	ErrBadRef = errors.New("invalid image reference")
	// ErrNoImage: the engine holds no image by that reference. gtask never
	// pulls; the image must be built (BuildImage) or loaded first.
	ErrNoImage = errors.New("no such image")
	// ErrNotAppImage: the image exists but cannot run an app the way gtask
	// starts one (no entrypoint, or not a Linux image).
	ErrNotAppImage = errors.New("not an app image")
)

// ImageSpec says what image BuildImage makes. Bin and Ref are required;
// every other field's zero value works.
type ImageSpec struct {
	// Bin is the app: a statically linked Linux executable (see
	// CheckBinary), copied into the image as AppPath.
	Bin string
	// Ref names the image, NAME[:TAG]; the tag defaults to latest. An
	// image that held Ref before loses the name to the new one.
	Ref string
	// App is the app's name, the value of the LabelApp label. Default:
	// Bin's base name without its extension.
	App string
	// Arch is the GOARCH Bin must be built for and the image declares.
	// Default: the engine's (EngineArch).
	Arch string
	// Labels are more labels for the image. LabelApp is always App.
	Labels map[string]string
	// Created is the image's creation time, and the time of every file in
	// it. Default: Bin's modification time, so that the same binary makes
	// the same image, with the same id, every time.
	Created time.Time
}

// AppImage is an image in the engine that can run an app, as the launcher
// needs to know it.
type AppImage struct {
	// ID is the engine's id of the image ("sha256:...").
	ID string
	// Ref is the reference the image was asked for by.
	Ref string
	// App is the image's LabelApp label: empty for an image gtask did not
	// build.
	App string
	// Entrypoint is the command a container runs, to which the launcher
	// appends `requestor PORT` or `provider PORT`.
	Entrypoint []string
	// Cmd is the image's default arguments, which the launcher replaces.
	Cmd []string
	// User is the user containers run as ("" means root, as Docker
	// defaults); ImageUser for an image BuildImage made.
	User string
	// WorkingDir is the containers' working directory; WorkDir for an
	// image BuildImage made.
	WorkingDir string
	// Labels are all the image's labels.
	Labels map[string]string
	// OS and Arch are the platform the image is for.
	OS, Arch string
}

// DefaultRef is the reference `gtask image build` gives an app's image
// when it is given none: gtask-app/NAME:latest, with NAME made a valid
// repository name (lower case; any other character than a letter, a digit,
// '.', '_' or '-' becomes '-').
func DefaultRef(app string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return '-'
	}, app)
	// A path component must start and end with a letter or digit.
	name = strings.Trim(name, "._-")
	if name == "" {
		name = "app"
	}
	return "gtask-app/" + name + ":latest"
}

// NormalizeRef checks that ref names an image by NAME[:TAG], as an image
// is built by, and returns it in its short form with the tag made explicit
// ("gtask-app/average" becomes "gtask-app/average:latest").
func NormalizeRef(ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("%w: empty; give NAME:TAG, e.g. %s", ErrBadRef, DefaultRef("myapp"))
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("%w %q: %v; give NAME:TAG, e.g. %s", ErrBadRef, ref, err, DefaultRef("myapp"))
	}
	if _, ok := named.(reference.Digested); ok {
		return "", fmt.Errorf("%w %q: a digest cannot name a new image; give NAME:TAG", ErrBadRef, ref)
	}
	return reference.FamiliarString(reference.TagNameOnly(named)), nil
}

// EngineArch is the architecture of the engine's containers, as a GOARCH
// ("amd64" where the engine does not say). An engine that runs other than
// Linux containers is an error: gtask's images are Linux images.
func EngineArch(ctx context.Context, c *client.Client) (string, error) {
	v, err := c.ServerVersion(ctx)
	if err != nil {
		return "", fmt.Errorf("docker: asking the engine its platform: %w", err)
	}
	if v.Os != "" && v.Os != "linux" {
		return "", fmt.Errorf("docker: the engine runs %s containers, and gtask's images are Linux images: switch the engine to Linux containers", v.Os)
	}
	if v.Arch == "" {
		return "amd64", nil
	}
	return v.Arch, nil
}

// BuildImage makes an image that runs spec.Bin, from scratch, and loads it
// into the engine under spec.Ref: no Dockerfile, no base image, no
// registry. The image holds the binary (AppPath, the entrypoint), WorkDir
// (the working directory, owned by ImageUser) and /tmp; it runs as
// ImageUser and is labelled LabelApp=spec.App.
//
// The image travels to the engine as the archive `docker save` writes,
// made on the fly: the binary is read once and never copied to a file.
// What is wrong with spec is an error wrapping ErrBadBinary or ErrBadRef;
// what the engine refuses is an error with its message.
func BuildImage(ctx context.Context, c *client.Client, spec ImageSpec) (AppImage, error) {
	if spec.Bin == "" {
		return AppImage{}, fmt.Errorf("%w: ImageSpec.Bin is empty", ErrBadBinary)
	}
	ref, err := NormalizeRef(spec.Ref)
	if err != nil {
		return AppImage{}, err
	}
	arch := spec.Arch
	if arch == "" {
		if arch, err = EngineArch(ctx, c); err != nil {
			return AppImage{}, err
		}
	}
	if err := CheckBinary(spec.Bin, arch); err != nil {
		return AppImage{}, err
	}
	bin, err := os.Open(spec.Bin)
	if err != nil {
		return AppImage{}, fmt.Errorf("%w: %w", ErrBadBinary, err)
	}
	defer bin.Close()
	st, err := bin.Stat()
	if err != nil {
		return AppImage{}, fmt.Errorf("%w: %w", ErrBadBinary, err)
	}
	app := spec.App
	if app == "" {
		app = strings.TrimSuffix(filepath.Base(spec.Bin), filepath.Ext(spec.Bin))
	}
	created := spec.Created
	if created.IsZero() {
		created = st.ModTime()
	}
	// Whole seconds: the tar headers hold no more, and the config must
	// say the same time as the files.
	created = created.UTC().Truncate(time.Second)

	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelApp] = app
	cfg := ocispec.Image{
		Created:  &created,
		Platform: ocispec.Platform{Architecture: arch, OS: "linux"},
		Config: ocispec.ImageConfig{
			User: ImageUser,
			// No passwd entry gives the user a home; Docker would say
			// HOME=/, which the user cannot write.
			Env:        []string{"HOME=/tmp"},
			Entrypoint: []string{AppPath},
			WorkingDir: WorkDir,
			Labels:     labels,
		},
		RootFS: ocispec.RootFS{Type: "layers"},
		History: []ocispec.History{{
			Created:   &created,
			CreatedBy: "gtask image build",
			Comment:   "the app " + app + " as " + AppPath,
		}},
	}
	a := archive{bin: bin, size: st.Size(), mtime: created, config: cfg, repoTag: ref}

	if err := load(ctx, c, a); err != nil {
		return AppImage{}, fmt.Errorf("docker: loading image %s into the engine: %w", ref, err)
	}
	return InspectAppImage(ctx, c, ref)
}

// errLoadEnded ends the archive's writer when the engine has answered
// before reading all of it.
var errLoadEnded = errors.New("the engine has answered")

// load streams a's archive to the engine's image load through a pipe,
// and returns the error the engine reports, if any. The writer goroutine
// is done when load returns.
func load(ctx context.Context, c *client.Client, a archive) error {
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	go func() {
		err := a.writeTo(pw)
		pw.CloseWithError(err) // nil: the reader sees EOF
		written <- err
	}()
	res, err := c.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	if err == nil {
		err = readLoadStream(res)
	}
	// Unblock the writer wherever it is, and wait for it.
	pr.CloseWithError(errLoadEnded)
	werr := <-written
	if werr != nil && !errors.Is(werr, errLoadEnded) && !errors.Is(werr, io.ErrClosedPipe) {
		// The archive could not be written (the binary could not be
		// read): the engine's complaint, if any, follows from it.
		return fmt.Errorf("writing the image archive: %w", werr)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}

// loadMessage is what gtask reads of one message of the engine's answer to
// an image load: its errors. (The SDK's jsonmessage package would bring a
// terminal library along for this.)
type loadMessage struct {
	// ErrorDetail is where engines put an error.
	ErrorDetail struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	// Error is where old engines put it, and new ones repeat it.
	Error string `json:"error"`
}

// readLoadStream reads the engine's answer to an image load to its end and
// closes it: a stream of JSON messages, any of which may be an error.
func readLoadStream(res image.LoadResponse) error {
	defer res.Body.Close()
	if !res.JSON {
		_, err := io.Copy(io.Discard, res.Body)
		return err
	}
	dec := json.NewDecoder(res.Body)
	for {
		var m loadMessage
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading the engine's answer: %w", err)
		}
		if m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// InspectAppImage finds the image ref names in the engine (built by
// BuildImage or otherwise) and says how to run it. An image the engine
// does not hold is an error wrapping ErrNoImage that says how to build it;
// one with no entrypoint, or not for Linux, wraps ErrNotAppImage.
func InspectAppImage(ctx context.Context, c *client.Client, ref string) (AppImage, error) {
	if ref == "" {
		return AppImage{}, fmt.Errorf("%w: empty; give NAME:TAG", ErrBadRef)
	}
	res, err := c.ImageInspect(ctx, ref)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return AppImage{}, fmt.Errorf("%w: no image %s in the Docker Engine: build it with `gtask image build APP -t %s`; gtask cannot pull", ErrNoImage, ref, ref)
		}
		return AppImage{}, fmt.Errorf("docker: inspecting image %s: %w", ref, err)
	}
	img := AppImage{ID: res.ID, Ref: ref, OS: res.Os, Arch: res.Architecture}
	if res.Config != nil {
		img.Entrypoint = res.Config.Entrypoint
		img.Cmd = res.Config.Cmd
		img.User = res.Config.User
		img.WorkingDir = res.Config.WorkingDir
		img.Labels = res.Config.Labels
		img.App = res.Config.Labels[LabelApp]
	}
	if img.OS != "" && img.OS != "linux" {
		return img, fmt.Errorf("%w: image %s is for %s, not Linux: build it with `gtask image build APP -t %s`", ErrNotAppImage, ref, img.OS, ref)
	}
	if len(img.Entrypoint) == 0 {
		return img, fmt.Errorf("%w: image %s has no entrypoint, and gtask runs an app image as `ENTRYPOINT requestor|provider PORT`: build it with `gtask image build APP -t %s`", ErrNotAppImage, ref, ref)
	}
	return img, nil
}

// archive is an image in the format of `docker save`: one layer, its
// config and a manifest.
type archive struct {
	bin     io.Reader // the app's binary, size bytes
	size    int64
	mtime   time.Time
	config  ocispec.Image // without its diff ids, which writeTo fills in
	repoTag string
}

// archiveManifest is one entry of an archive's manifest.json: where the
// image's config and layers are, and its names.
type archiveManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// layerName is the layer's path in the archive. Its digest, the usual
// name, is only known once it is written, after its header.
const layerName = "layer.tar"

// blockSize is the unit of tar archives: headers take one block, contents
// are padded to whole blocks, and two zero blocks end an archive.
const blockSize = 512

// layerHeaders are the layer's entries. The binary's comes last, so that
// all the layer's headers are known before its content is read.
func (a archive) layerHeaders() []*tar.Header {
	dir := func(name string, mode int64, uid int) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: uid, Gid: uid, ModTime: a.mtime, Format: tar.FormatUSTAR}
	}
	return []*tar.Header{
		dir("golem/", 0o755, 0),
		dir(strings.TrimPrefix(WorkDir, "/")+"/", 0o755, imageUID),
		dir("tmp/", 0o1777, 0),
		{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(AppPath, "/"), Mode: 0o755, Size: a.size, ModTime: a.mtime, Format: tar.FormatUSTAR},
	}
}

// layerSize is the length of the layer's tar: the outer archive's header
// for it comes first. The outer tar.Writer checks that it was right.
func (a archive) layerSize() int64 {
	var n int64
	for _, h := range a.layerHeaders() {
		n += blockSize + (h.Size+blockSize-1)/blockSize*blockSize
	}
	return n + 2*blockSize
}

// writeTo writes the archive to w in one pass: the layer, hashed as it
// goes, then the config that names the layer's digest, then the manifest.
// The engine reads the files of an archive in any order.
func (a archive) writeTo(w io.Writer) error {
	tw := tar.NewWriter(w)
	file := func(name string, size int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: a.mtime, Format: tar.FormatUSTAR})
	}

	if err := file(layerName, a.layerSize()); err != nil {
		return err
	}
	diffID := digest.Canonical.Digester()
	lw := tar.NewWriter(io.MultiWriter(tw, diffID.Hash()))
	for _, h := range a.layerHeaders() {
		if err := lw.WriteHeader(h); err != nil {
			return fmt.Errorf("layer: %s: %w", h.Name, err)
		}
	}
	// The binary is the last entry: copy exactly its size, which the
	// header promised; a binary that changes meanwhile is an error.
	if _, err := io.CopyN(lw, a.bin, a.size); err != nil {
		return fmt.Errorf("layer: copying the binary: %w", err)
	}
	if err := lw.Close(); err != nil {
		return fmt.Errorf("layer: %w", err)
	}

	cfg := a.config
	cfg.RootFS.DiffIDs = []digest.Digest{diffID.Digest()}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	cfgName := digest.FromBytes(cfgJSON).Encoded() + ".json"
	if err := file(cfgName, int64(len(cfgJSON))); err != nil {
		return err
	}
	if _, err := tw.Write(cfgJSON); err != nil {
		return err
	}

	manifest, err := json.Marshal([]archiveManifest{{Config: cfgName, RepoTags: []string{a.repoTag}, Layers: []string{layerName}}})
	if err != nil {
		return err
	}
	if err := file("manifest.json", int64(len(manifest))); err != nil {
		return err
	}
	if _, err := tw.Write(manifest); err != nil {
		return err
	}
	return tw.Close()
}
