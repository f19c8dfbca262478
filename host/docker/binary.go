package docker

import (
	"debug/elf"
	"fmt"
	"os"
)

// elfArch maps an ELF machine, class and byte order to the GOARCH that
// names it, for the architectures a Docker Engine runs on.
func elfArch(f *elf.File) string {
	switch f.Machine {
	case elf.EM_X86_64:
		return "amd64"
	case elf.EM_386:
		return "386"
	case elf.EM_AARCH64:
		return "arm64"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_PPC64:
		if f.Data == elf.ELFDATA2LSB {
			return "ppc64le"
		}
		return "ppc64"
	case elf.EM_S390:
		return "s390x"
	case elf.EM_RISCV:
		if f.Class == elf.ELFCLASS64 {
			return "riscv64"
		}
	case elf.EM_LOONGARCH:
		return "loong64"
	}
	return ""
}

// CheckBinary reports whether the file at path can be an image's only
// program: a Linux ELF executable that is statically linked (an image built
// FROM scratch has no dynamic loader and no libc) and, when goarch is not
// empty, built for goarch (a GOARCH name such as "amd64"). What is wrong is
// an error wrapping ErrBadBinary that says how to fix it.
func CheckBinary(path, goarch string) error {
	file, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadBinary, err)
	}
	defer file.Close()
	f, err := elf.NewFile(file)
	if err != nil {
		return fmt.Errorf("%w: %s is not an ELF executable (%v): an image needs a Linux binary; build one with GOOS=linux CGO_ENABLED=0 go build, or name the app's Go package directory", ErrBadBinary, path, err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%w: %s is an ELF %s, not an executable", ErrBadBinary, path, f.Type)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return fmt.Errorf("%w: %s is built for %s, not Linux: build it with GOOS=linux", ErrBadBinary, path, f.OSABI)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: %s is dynamically linked (it names a program interpreter), and an image built from scratch has no dynamic loader or libc: build it with CGO_ENABLED=0 (or name the app's Go package directory and let gtask build it)", ErrBadBinary, path)
		}
	}
	if goarch != "" {
		if got := elfArch(f); got != goarch {
			if got == "" {
				got = f.Machine.String()
			}
			return fmt.Errorf("%w: %s is built for %s, but the Docker Engine runs %s: build it with GOARCH=%s", ErrBadBinary, path, got, goarch, goarch)
		}
	}
	return nil
}
