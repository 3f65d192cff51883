package vulndb

// Bounds on what Import reads. An OSV dump is untrusted input: these keep a
// hostile zip from exhausting memory, disk or time. The real dumps are far
// below them (Debian's all.zip holds some 60,000 advisories of a few KiB).
const (
	// MaxZipSize bounds the zip file itself.
	MaxZipSize = 4 << 30
	// MaxEntries bounds the files in the zip's central directory. It is
	// checked by walking the directory before archive/zip allocates one
	// record per entry.
	MaxEntries = 500_000
	// MaxDirectorySize bounds the zip's central directory, which
	// archive/zip holds in memory (names, comments and extra fields).
	MaxDirectorySize = 128 << 20
	// MaxEntrySize bounds one advisory's JSON, counted in bytes actually
	// decompressed (a zip header's size claim is not trusted).
	MaxEntrySize = 4 << 20
	// MaxTotalSize bounds the JSON decompressed from one zip.
	MaxTotalSize = 8 << 30
)

// Bounds on one advisory. Past them the advisory, and so the import, is
// rejected: real advisories stay orders of magnitude below.
const (
	maxIDLen        = 128
	maxNameLen      = 256 // package name or ecosystem
	maxVersionLen   = 256
	maxAliases      = 1_000
	maxAffected     = 20_000
	maxRanges       = 100  // per affected package
	maxEvents       = 1000 // per range
	maxVersions     = 20_000
	maxSeverities   = 100
	maxSummaryBytes = 512 // stored summary; longer ones are cut at a rune boundary
	maxDepth        = 64  // nesting of JSON objects and arrays; OSV needs about 6
)

// limits are the bounds of one DB; tests lower them.
type limits struct {
	zipSize, entries, dirSize, entrySize, totalSize int64
}

func defaultLimits() limits {
	return limits{zipSize: MaxZipSize, entries: MaxEntries, dirSize: MaxDirectorySize, entrySize: MaxEntrySize, totalSize: MaxTotalSize}
}
