# vigil — see README.md. `make demo` runs a scan of a lab of real services;
# `make test` runs every test (the lab tests need root).
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/vigil

.PHONY: all build demo deps test test-short fuzz bench vet clean

all: build

build:
	@echo "building $(BIN) (the first build compiles nuclei and takes several minutes)"
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/vigil

# Installs the Debian packages the lab needs (idempotent), builds vigil,
# starts the lab in network namespaces, scans it, prints the findings and
# tears the lab down.
demo: deps build
	$(GO) run ./internal/lab/cmd/labdemo --vigil $(BIN)

deps:
	@bash scripts/install-deps.sh

# Every test, including the network-namespace lab (skipped with a reason
# when not root). Fuzz targets run their seed corpus here; `make fuzz`
# explores further.
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 60m ./...

test-short:
	$(GO) test -count=1 -short ./...

FUZZTIME ?= 30s
fuzz:
	$(GO) test ./config   -run '^$$' -fuzz FuzzParse          -fuzztime $(FUZZTIME)
	$(GO) test ./scanner  -run '^$$' -fuzz FuzzNmapXML        -fuzztime $(FUZZTIME)
	$(GO) test ./scanner  -run '^$$' -fuzz FuzzNucleiResultJSON -fuzztime $(FUZZTIME)
	$(GO) test ./reports  -run '^$$' -fuzz FuzzLoadBaseline   -fuzztime $(FUZZTIME)
	$(GO) test ./store    -run '^$$' -fuzz FuzzParseURL       -fuzztime $(FUZZTIME)
	$(GO) test ./agent/protocol -run '^$$' -fuzz FuzzParseToken -fuzztime $(FUZZTIME)
	$(GO) test ./agentsrv -run '^$$' -fuzz FuzzDecodeBatch -fuzztime $(FUZZTIME)
	$(GO) test ./collectors/csvidentity -run '^$$' -fuzz FuzzRead$$ -fuzztime $(FUZZTIME)
	$(GO) test ./collectors/csvidentity -run '^$$' -fuzz FuzzReadRoster -fuzztime $(FUZZTIME)
	$(GO) test ./collectors/ldapidentity -run '^$$' -fuzz FuzzParseEntry -fuzztime $(FUZZTIME)
	$(GO) test ./collectors/httpapi -run '^$$' -fuzz FuzzNextLink -fuzztime $(FUZZTIME)
	$(GO) test ./collectors/httpapi -run '^$$' -fuzz FuzzRetryAfter -fuzztime $(FUZZTIME)
	$(GO) test ./collectors/entra -run '^$$' -fuzz FuzzUsersPage -fuzztime $(FUZZTIME)
	$(GO) test ./collectors/google -run '^$$' -fuzz FuzzUsersPage -fuzztime $(FUZZTIME)
	$(GO) test ./collectors/okta -run '^$$' -fuzz FuzzUsersPage -fuzztime $(FUZZTIME)
	$(GO) test ./evidence -run '^$$' -fuzz FuzzVerifyArchive -fuzztime $(FUZZTIME)
	$(GO) test ./evidence -run '^$$' -fuzz FuzzVerifyFiles -fuzztime $(FUZZTIME)
	$(GO) test ./evidence -run '^$$' -fuzz FuzzEntryLineFastPath -fuzztime $(FUZZTIME)
	$(GO) test ./telemetry -run '^$$' -fuzz FuzzIngest -fuzztime $(FUZZTIME)
	$(GO) test ./users -run '^$$' -fuzz FuzzParsePHC -fuzztime $(FUZZTIME)
	$(GO) test ./agent/spool -run '^$$' -fuzz FuzzReadRecord -fuzztime $(FUZZTIME)
	$(GO) test ./collectors/httpapi -run '^$$' -fuzz FuzzAPIMessage -fuzztime $(FUZZTIME)
	$(GO) test ./collectors/software/internal/advisory -run '^$$' -fuzz FuzzParseBanner -fuzztime $(FUZZTIME)
	$(GO) test ./collectors/software/internal/advisory -run '^$$' -fuzz FuzzRecord -fuzztime $(FUZZTIME)
	$(GO) test ./collectors/software/internal/imagetar -run '^$$' -fuzz FuzzImageTar -fuzztime $(FUZZTIME)

# vigil against plain nmap on the lab's segments (needs root): see
# scripts/bench-scan.sh.
bench: build
	bash scripts/bench-scan.sh

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
