package docker

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadLoadStream checks that an error anywhere in the engine's answer
// to a load becomes the error, and that an answer without one is success.
func TestReadLoadStream(t *testing.T) {
	tests := []struct {
		name, body string
		json       bool
		want       string // "": no error
	}{
		{"loaded", `{"stream":"Loaded image: gtask-app/a:latest\n"}` + "\n", true, ""},
		{"empty", "", true, ""},
		{"error detail", `{"stream":"x"}` + "\n" + `{"errorDetail":{"message":"invalid diffID for layer 0"},"error":"invalid diffID for layer 0"}`, true, "invalid diffID for layer 0"},
		{"old error", `{"error":"unexpected EOF"}`, true, "unexpected EOF"},
		{"garbage", `{"stream":`, true, "reading the engine's answer"},
		{"not JSON", "Loaded image: a:latest\n", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := readLoadStream(image.LoadResponse{Body: io.NopCloser(strings.NewReader(tt.body)), JSON: tt.json})
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestArchive reads back the archive writeTo writes: the layer's size is
// the one its header announced, the config names the layer's digest, the
// manifest names both, and the layer holds the binary and the dirs with
// the modes and owners the image promises.
func TestArchive(t *testing.T) {
	for _, size := range []int{0, 1, 511, 512, 513, 100_000} {
		bin := bytes.Repeat([]byte{0x7f}, size)
		when := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		a := archive{
			bin: bytes.NewReader(bin), size: int64(size), mtime: when,
			config:  ocispec.Image{Config: ocispec.ImageConfig{Entrypoint: []string{AppPath}}},
			repoTag: "gtask-app/x:latest",
		}
		var buf bytes.Buffer
		require.NoError(t, a.writeTo(&buf), "size %d", size)

		files := map[string][]byte{}
		tr := tar.NewReader(&buf)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			b, err := io.ReadAll(tr)
			require.NoError(t, err)
			files[h.Name] = b
		}
		var m []archiveManifest
		require.NoError(t, json.Unmarshal(files["manifest.json"], &m))
		require.Len(t, m, 1)
		assert.Equal(t, []string{"gtask-app/x:latest"}, m[0].RepoTags)
		require.Equal(t, []string{layerName}, m[0].Layers)

		layer := files[layerName]
		assert.Len(t, layer, int(a.layerSize()))
		cfgJSON := files[m[0].Config]
		assert.Equal(t, digest.FromBytes(cfgJSON).Encoded()+".json", m[0].Config)
		var cfg ocispec.Image
		require.NoError(t, json.Unmarshal(cfgJSON, &cfg))
		assert.Equal(t, []digest.Digest{digest.FromBytes(layer)}, cfg.RootFS.DiffIDs)
		assert.Equal(t, []string{AppPath}, cfg.Config.Entrypoint)

		type entry struct {
			mode     int64
			uid, gid int
			typ      byte
		}
		got := map[string]entry{}
		lr := tar.NewReader(bytes.NewReader(layer))
		for {
			h, err := lr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			got[h.Name] = entry{h.Mode, h.Uid, h.Gid, h.Typeflag}
			assert.True(t, h.ModTime.Equal(when), "%s: %v", h.Name, h.ModTime)
			if h.Name == "app" {
				content, err := io.ReadAll(lr)
				require.NoError(t, err)
				assert.Equal(t, bin, content)
			}
		}
		assert.Equal(t, map[string]entry{
			"app":         {0o755, 0, 0, tar.TypeReg},
			"golem/":      {0o755, 0, 0, tar.TypeDir},
			"golem/work/": {0o755, imageUID, imageUID, tar.TypeDir},
			"tmp/":        {0o1777, 0, 0, tar.TypeDir},
		}, got)
	}
}

// TestArchiveShortBinary checks that a binary shorter than it was when
// measured (changed meanwhile) fails the archive instead of corrupting it.
func TestArchiveShortBinary(t *testing.T) {
	a := archive{bin: strings.NewReader("short"), size: 100, repoTag: "x:latest"}
	err := a.writeTo(io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "copying the binary")
}
