# netdisk: top-level build. `make` builds userspace and the kernel module,
# `make test` runs every test, `make demo` runs the story in a VM.

CC      ?= cc
O       ?= build
SAN     ?= 0
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
           -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter \
           -Iinclude -Ilib -pthread
ifeq ($(SAN),1)
O       := build-asan
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer \
           -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif
LDLIBS  += -lcrypto -pthread
# The one version (debian/changelog): --version of both programs.
VERSION := $(shell scripts/version)
ifeq ($(VERSION),)
$(error no version: scripts/version failed)
endif
CPPFLAGS += -DNETDISK_VERSION='"$(VERSION)"'
# netdiskd and what links its objects: config parser, readiness.
SERVER_LDLIBS := -linih -lsystemd

LIB_SRC    := $(wildcard lib/*.c)
SERVER_SRC := $(wildcard server/*.c)
# cli/generator.c: netdisk-generator's main(), the rest is the netdisk tool.
CLI_SRC    := $(filter-out cli/generator.c,$(wildcard cli/*.c))
TOOL_SRC   := $(wildcard tests/tools/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)

LIB_OBJ    := $(LIB_SRC:%.c=$(O)/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(O)/%.o)
CLI_OBJ    := $(CLI_SRC:%.c=$(O)/%.o)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(O)/tests/%)
TOOL_BIN   := $(TOOL_SRC:tests/tools/%.c=$(O)/tools/%)
# The server's objects minus main(), so unit tests can link server code.
SERVER_LIB_OBJ := $(filter-out $(O)/server/main.o,$(SERVER_OBJ))

# NO_INSTALL_DEPS=1: never run scripts/install-deps (package builds).
ifneq ($(NO_INSTALL_DEPS),1)
DEPS_STAMP := .deps-installed
endif

# Compiles run this many jobs at once where make test calls them (the
# userspace, SAN, fuzz and kernel builds); the test suites themselves run
# serially.
NPROC := $(shell nproc 2>/dev/null || echo 1)

# Keep intermediate objects (unit-test and tool objects are chained rules).
.SECONDARY:

.PHONY: all userspace kernel test unit integration vm-test asan-test \
        demo bench clean deps sparse fuzz install uninstall systemd-test \
        vm-test-compat kroot programs dkms-src dkms-install deb pkg-test \
        boot-test boot-image boot-demo

all: userspace kernel

# What gets installed (make install, the Debian packages).
programs: $(O)/netdiskd $(O)/netdisk $(O)/netdisk-generator

userspace: $(O)/netdiskd $(O)/netdisk $(O)/netdisk-generator $(UNIT_BIN) \
           $(TOOL_BIN)

ifneq ($(DEPS_STAMP),)
$(DEPS_STAMP): scripts/install-deps
	./scripts/install-deps
	touch $@
endif

deps: $(DEPS_STAMP)

$(O)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(O)/cli/netdisk.o $(O)/server/main.o: debian/changelog

$(O)/libnetdisk.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(O)/netdiskd: $(SERVER_OBJ) $(O)/libnetdisk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(SERVER_LDLIBS)

$(O)/netdisk: $(CLI_OBJ) $(O)/libnetdisk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(O)/netdisk-generator: $(O)/cli/generator.o $(O)/cli/tab.o $(O)/libnetdisk.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(O)/tests/%: $(O)/tests/unit/%.o $(SERVER_LIB_OBJ) $(O)/libnetdisk.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(SERVER_LDLIBS) -lcmocka

$(O)/tools/%: $(O)/tests/tools/%.o $(O)/libnetdisk.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The kernel to build for and boot in the VM tests: `make kernel KVER=...`.
# Without it, scripts/kver: the running kernel if its headers are
# installed, else the distribution's default one, named on stderr. Chosen
# once per make run.
KVER ?= $(eval KVER := $(shell scripts/kver))$(KVER)
# O= : our O is a userspace build dir; kbuild would take it as its output dir.
# tests/kmod: test-only modules the VM cases load (never installed).
kernel: | $(DEPS_STAMP)
	$(MAKE) -j$(NPROC) -C kernel KVER=$(KVER) O=
	$(MAKE) -j$(NPROC) -C tests/kmod KVER=$(KVER) O=

sparse: | $(DEPS_STAMP)
	$(MAKE) -C kernel KVER=$(KVER) C=2 O=
	$(MAKE) -C tests/kmod KVER=$(KVER) C=2 O=

# The vectors come from an independent Python implementation: regenerate
# and compare, so nobody can update them from libnetdisk's output.
# PROTOCOL.md §5 must be what nd-vectors prints from that header.
unit: userspace
	python3 tests/tools/gen-vectors.py | diff -u include/netdisk_vectors.h -
	sed -n '/^### Inputs/,$$p' docs/PROTOCOL.md > $(O)/vectors.md
	$(O)/tools/nd-vectors | diff -u $(O)/vectors.md -
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: userspace
	O=$(O) tests/integration/run.sh

asan-test:
	$(MAKE) -j$(NPROC) SAN=1 userspace
	$(MAKE) SAN=1 unit integration

vm-test: userspace kernel
	O=$(O) KVER=$(KVER) tests/vm/run.sh

# The systemd units in a VM that boots systemd as PID 1 (tests/vm/systemd.sh).
systemd-test: userspace kernel
	O=$(O) KVER=$(KVER) tests/vm/systemd.sh

# The other kernels (scripts/kver --others): 6.12 from bookworm-backports
# (scripts/install-deps) and Debian's newest, 7.x from trixie-backports,
# built and booted from the Debian 13 root of scripts/kroot (made once,
# cached in /var/cache/netdisk). Each boots its cases below, chosen in
# DESIGN.md "Other kernels". The tree is rebuilt for KVER at the end,
# failed or not.
KVERS_OTHER ?= $(eval KVERS_OTHER := $(shell scripts/kver --others $(KVER)))$(KVERS_OTHER)
# The issue's six (self-test, ext4, fio verify, detach, reconnect, cache)
# on every other kernel, plus on the newest the two whose kernel
# interfaces differ most (rmmod, discard limits): 6.12 takes the same
# compat.h branches, and the boot test's minutes come from there.
VM_COMPAT_CASES = 00-module 10-fs-tree 20-fio-verify 70-detach-busy \
		  100-reconnect 140-cache
VM_COMPAT_NEWEST = 90-rmmod 120-discard
# Every kernel's build is W=1 warning-free: a warning fails the run.
KERNEL_STRICT = W=1 KCFLAGS=-Werror

kroot:
	scripts/kroot install >/dev/null

vm-test-compat: userspace kroot
	@rc=0; for k in $(KVERS_OTHER); do \
		cases="$(VM_COMPAT_CASES)"; \
		[ "$$k" != "$(lastword $(KVERS_OTHER))" ] || \
			cases="$$cases $(VM_COMPAT_NEWEST)"; \
		echo "==== kernel $$k: $$cases"; \
		$(MAKE) kernel KVER=$$k $(KERNEL_STRICT) && \
		O=$(O) KVER=$$k VM_RESULTS=$(O)/vm/results-$$k \
			tests/vm/run.sh $$cases || rc=1; \
	done; $(MAKE) kernel KVER=$(KVER) $(KERNEL_STRICT) && exit $$rc

# The Debian 13 root of vm-test-compat (scripts/kroot: mostly download and
# dpkg, 2 of its ~10 minutes on the CPU), pkg-test's Debian 12 root and
# boot-test's (scripts/mkroot, the latter through tests/boot/mkimage.sh)
# are made in the background while the other suites run; `make kroot`,
# pkg-test and boot-test then wait for them on their locks, and say why if
# they failed (logs: $(O)/kroot.log, $(O)/mkroot.log, $(O)/mkroot-boot.log).
# The boot test's image (.debs, DKMS, update-initramfs, mke2fs) is made in
# the background while vm-test runs, whose guests leave a core idle much
# of the time (log: $(O)/boot-image.log). Each suite's time is printed on
# one line, so a CI log shows where the minutes went.
TEST_SUITES = unit integration asan-test fuzz-smoke vm-test systemd-test \
	      vm-test-compat pkg-test boot-test
test: | $(DEPS_STAMP)
	@mkdir -p $(O) && (scripts/kroot install >$(O)/kroot.log 2>&1 &) && \
		(scripts/mkroot --tarball linux-headers-$(KVER) man-db \
			>$(O)/mkroot.log 2>&1 &) && \
		(tests/boot/mkimage.sh --cache >$(O)/mkroot-boot.log 2>&1 &)
	@t0=$$(date +%s); for s in $(TEST_SUITES); do \
		t=$$(date +%s); \
		if [ $$s = vm-test ]; then ($(MAKE) boot-image \
			>$(O)/boot-image.log 2>&1 &); fi; \
		if [ $$s = unit ]; then $(MAKE) -j$(NPROC) userspace || exit 1; fi; \
		$(MAKE) $$s || exit 1; \
		echo "==== make $$s: $$(($$(date +%s) - t)) s"; \
	done; echo "all test suites passed in $$(($$(date +%s) - t0)) s"

# Debian 12 machines boot from a netdisk copy-on-write export in QEMU
# (tests/boot/run.sh): their image is made from the packages of `make deb`
# on every run; its Debian root is cached by scripts/mkroot.
boot-test: deb userspace
	O=$(O) tests/boot/run.sh

# One diskless machine boots from a copy-on-write export, its console shown
# (a few minutes; the first run also makes the cached Debian 12 root).
boot-demo: deb userspace
	O=$(O) tests/boot/run.sh --demo

# Only the boot test's image (the test takes it if its packages are the
# same): make test makes it in the background while vm-test runs.
boot-image: deb userspace
	O=$(O) tests/boot/run.sh --image-only

demo: userspace kernel
	O=$(O) KVER=$(KVER) scripts/demo.sh

bench: userspace kernel
	O=$(O) KVER=$(KVER) bench/run.sh

# ---- make install: binaries, systemd units and generator, man pages,
# examples. PREFIX=/usr/local, DESTDIR= for staging. The configuration
# stays in /etc/netdisk whatever the prefix (netdiskd's default path).
PREFIX     ?= /usr/local
SBINDIR    ?= $(PREFIX)/sbin
BINDIR     ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
GENDIR     ?= $(PREFIX)/lib/systemd/system-generators
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/netdisk
LIBEXECDIR ?= $(PREFIX)/lib/netdisk
# udev, initramfs-tools and dracut read only these, whatever PREFIX is.
UDEVRULESDIR ?= /lib/udev/rules.d
INITRAMFSDIR ?= /usr/share/initramfs-tools
DRACUTDIR    ?= /usr/lib/dracut/modules.d
DRACUT_FILES := $(wildcard dracut/90netdisk/*)
MAN_PAGES  := $(wildcard man/*.[1-8])
UNITS      := netdiskd.service netdisk@.service netdisk-shutdown.service
UNIT_SED   := -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
              -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
              -e 's|@LIBEXECDIR@|$(LIBEXECDIR)|g'

install: $(O)/netdiskd $(O)/netdisk $(O)/netdisk-generator
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(GENDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 $(O)/netdiskd $(DESTDIR)$(SBINDIR)/netdiskd
	install -m 0755 $(O)/netdisk $(DESTDIR)$(BINDIR)/netdisk
	install -m 0755 $(O)/netdisk-generator $(DESTDIR)$(GENDIR)/netdisk-generator
	install -D -m 0755 systemd/netdisk-shutdown \
		$(DESTDIR)$(LIBEXECDIR)/netdisk-shutdown
	for u in $(UNITS); do \
		sed $(UNIT_SED) systemd/$$u.in >$(DESTDIR)$(UNITDIR)/$$u.tmp && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && \
		mv $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	for m in $(MAN_PAGES); do \
		s=$${m##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s && \
		install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/ || exit 1; \
	done
	install -m 0644 docs/examples/netdiskd.conf \
		$(DESTDIR)$(DOCDIR)/netdiskd.conf.example
	install -m 0644 docs/examples/netdisktab $(DESTDIR)$(DOCDIR)/netdisktab.example
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -D -m 0644 udev/60-netdisk.rules \
		$(DESTDIR)$(UDEVRULESDIR)/60-netdisk.rules
	install -D -m 0755 initramfs-tools/hooks/netdisk \
		$(DESTDIR)$(INITRAMFSDIR)/hooks/netdisk
	install -D -m 0755 initramfs-tools/scripts/local-top/netdisk \
		$(DESTDIR)$(INITRAMFSDIR)/scripts/local-top/netdisk
	install -D -m 0644 initramfs-tools/conf-hooks.d/netdisk \
		$(DESTDIR)$(INITRAMFSDIR)/conf-hooks.d/netdisk
	install -d $(DESTDIR)$(DRACUTDIR)/90netdisk
	for f in $(DRACUT_FILES); do \
		install -m 0755 $$f $(DESTDIR)$(DRACUTDIR)/90netdisk/ || exit 1; done

# ---- DKMS: the module's sources and dkms.conf in /usr/src/netdisk-VERSION,
# from which DKMS builds netdisk.ko for every kernel with headers and again
# on kernel upgrades. `make dkms-install` (root) registers and builds them.
DKMS_DIR := /usr/src/netdisk-$(VERSION)
# (kernel/*.mod.c: kbuild's output of an earlier in-tree build.)
DKMS_SRC := $(filter-out %.mod.c,$(wildcard kernel/*.c kernel/*.h)) \
            kernel/Kbuild kernel/Makefile \
            include/netdisk_proto.h include/netdisk_ioctl.h \
            include/netdisk_vectors.h

dkms-src:
	install -d $(DESTDIR)$(DKMS_DIR)/kernel $(DESTDIR)$(DKMS_DIR)/include
	for f in $(DKMS_SRC); do \
		install -m 0644 $$f $(DESTDIR)$(DKMS_DIR)/$$f || exit 1; done
	sed 's/#MODULE_VERSION#/$(VERSION)/' dkms.conf \
		>$(DESTDIR)$(DKMS_DIR)/dkms.conf

dkms-install: dkms-src
	dkms install netdisk/$(VERSION)

# ---- Debian packages (debian/): netdisk-server, netdisk-client and
# netdisk-dkms into $(O)/deb, built from a copy of the tree (tracked and
# untracked-but-not-ignored files) so that nothing lands beside it; then
# lintian, which must have nothing left to say (debian/*.lintian-overrides
# carry the justified exceptions). The .changes file stands for the
# packages: they are rebuilt when a file of the tree is newer, so one
# `make test` builds them once for pkg-test and boot-test.
DEB_O := $(O)/deb
DEB_CHANGES := $(DEB_O)/netdisk_$(VERSION)_$(shell dpkg --print-architecture).changes
DEB_INPUTS := $(wildcard $(shell git ls-files -co --exclude-standard 2>/dev/null))

deb: $(DEB_CHANGES)

$(DEB_CHANGES): $(DEB_INPUTS) | $(DEPS_STAMP)
	rm -rf $(DEB_O)
	mkdir -p $(DEB_O)/netdisk-$(VERSION)
	git ls-files -co --exclude-standard -z | \
		tar --null -T - -cf - | tar -C $(DEB_O)/netdisk-$(VERSION) -xf -
	cd $(DEB_O)/netdisk-$(VERSION) && dpkg-buildpackage -us -uc -b -Jauto \
		>../build.log 2>&1 || { tail -n 40 ../build.log; exit 1; }
	rm -rf $(DEB_O)/netdisk-$(VERSION)
	lintian --fail-on error,warning,info --display-info $@ || \
		{ rm -f $@; exit 1; }

# The packages installed into a clean Debian 12 root, DKMS, a kernel
# upgrade, the DKMS-built module in a VM, purge (tests/pkg/run.sh).
pkg-test: deb
	O=$(O) KVER=$(KVER) tests/pkg/run.sh

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/netdiskd $(DESTDIR)$(BINDIR)/netdisk \
		$(DESTDIR)$(GENDIR)/netdisk-generator \
		$(DESTDIR)$(LIBEXECDIR)/netdisk-shutdown
	-rmdir $(DESTDIR)$(LIBEXECDIR) 2>/dev/null
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS))
	for m in $(MAN_PAGES); do s=$${m##*.}; \
		rm -f $(DESTDIR)$(MANDIR)/man$$s/$${m##*/}; done
	rm -rf $(DESTDIR)$(DOCDIR)
	rm -f $(DESTDIR)$(UDEVRULESDIR)/60-netdisk.rules \
		$(DESTDIR)$(INITRAMFSDIR)/hooks/netdisk \
		$(DESTDIR)$(INITRAMFSDIR)/scripts/local-top/netdisk \
		$(DESTDIR)$(INITRAMFSDIR)/conf-hooks.d/netdisk
	rm -rf $(DESTDIR)$(DRACUTDIR)/90netdisk

clean:
	rm -rf build build-asan build-fuzz
	-$(MAKE) -C kernel clean KVER=$(KVER) O=
	-$(MAKE) -C tests/kmod clean KVER=$(KVER) O=

# (vm/, pkg/, deb/: root file systems and package builds, whose
# /etc/*.d are no make files)
-include $(shell find $(O) \( -path $(O)/vm -o -path $(O)/pkg -o -path $(O)/deb -o -path $(O)/boot \) \
	-prune -o -name '*.d' -print 2>/dev/null)

# ---- libFuzzer harnesses (tests/fuzz): clang, ASan+UBSan, into build-fuzz.
# `make fuzz` runs each for FUZZ_TIME seconds, `make fuzz-smoke` for ~10 s.
FUZZ_O      := build-fuzz
FUZZ_CC     ?= clang
FUZZ_TIME   ?= 60
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all \
               -fno-omit-frame-pointer
FUZZ_CFLAGS := -O1 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow \
               -Wstrict-prototypes -Wmissing-prototypes \
               -Wno-unused-parameter -Iinclude -Ilib -pthread $(FUZZ_SAN)
FUZZ_SRC    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_MAIN   := $(filter-out tests/fuzz/fuzz_common.c,$(FUZZ_SRC))
FUZZ_BIN    := $(FUZZ_MAIN:tests/fuzz/fuzz_%.c=$(FUZZ_O)/fuzz/%)
# Everything the harnesses drive: the lib, the server minus main(), helpers.
FUZZ_OBJ    := $(LIB_SRC:%.c=$(FUZZ_O)/%.o) \
               $(filter-out $(FUZZ_O)/server/main.o,$(SERVER_SRC:%.c=$(FUZZ_O)/%.o)) \
               $(FUZZ_O)/tests/fuzz/fuzz_common.o

.PHONY: fuzz-build fuzz-smoke

$(FUZZ_O)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_O)/fuzz/%: $(FUZZ_O)/tests/fuzz/fuzz_%.o $(FUZZ_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ -lcrypto -pthread $(SERVER_LDLIBS)

fuzz-build: $(FUZZ_BIN)

fuzz:
	$(MAKE) -j$(NPROC) fuzz-build
	FUZZ_O=$(FUZZ_O) FUZZ_TIME=$(FUZZ_TIME) tests/fuzz/run.sh

fuzz-smoke:
	$(MAKE) -j$(NPROC) fuzz-build
	FUZZ_O=$(FUZZ_O) FUZZ_TIME=10 tests/fuzz/run.sh

-include $(shell find $(FUZZ_O) -name '*.d' 2>/dev/null)
