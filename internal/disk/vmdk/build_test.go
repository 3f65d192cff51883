package vmdk

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
)

// This file builds VMDK images in memory, following the specification, so
// that tests and fuzz seeds can corrupt exactly one structure.

// buildOpts describes an image to build from raw guest bytes.
type buildOpts struct {
	grainSectors uint64 // default 8
	stream       bool   // streamOptimized: compressed grains with markers
	footer       bool   // stream only: GD_AT_END in the header, footer at the end
	zeroGrain    bool   // set the zeroed-grain flag and store zero grains as GTE 1
	capacity     uint64 // sectors; default len(raw)/512
	desc         string // descriptor text; default a matching one
	// grainHook, if set, may replace a compressed grain's marker LBA and
	// payload (stream only).
	grainHook func(g uint64, lba uint64, payload []byte) (uint64, []byte)
}

// layout reports where build put things, in sectors.
type layout struct {
	gd     uint64
	gts    []uint64 // per grain table, 0 if not allocated
	grains map[uint64]uint64
}

const testDescSectors = 1

func defaultDesc(createType string, capacity uint64) string {
	return fmt.Sprintf("# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=%q\n\n"+
		"# Extent description\nRW %d SPARSE \"test.vmdk\"\n\n# The Disk Data Base\n#DDB\n\n"+
		"ddb.virtualHWVersion = \"4\"\nddb.adapterType = \"ide\"\n", createType, capacity)
}

func putHeader(b []byte, version, flags uint32, capacity, grain, gd, overhead uint64, compress uint16) {
	le := binary.LittleEndian
	le.PutUint32(b[0:], magicKDMV)
	le.PutUint32(b[4:], version)
	le.PutUint32(b[8:], flags)
	le.PutUint64(b[12:], capacity)
	le.PutUint64(b[20:], grain)
	le.PutUint64(b[28:], 1)
	le.PutUint64(b[36:], testDescSectors)
	le.PutUint32(b[44:], gtesPerGT)
	le.PutUint64(b[48:], 0)
	le.PutUint64(b[56:], gd)
	le.PutUint64(b[64:], overhead)
	copy(b[73:], "\n \r\n")
	le.PutUint16(b[77:], compress)
}

func putMarker(b []byte, val uint64, typ uint32) {
	binary.LittleEndian.PutUint64(b[0:], val)
	binary.LittleEndian.PutUint32(b[8:], 0)
	binary.LittleEndian.PutUint32(b[12:], typ)
}

func sectorsFor(n int) uint64 { return uint64((n + sectorSize - 1) / sectorSize) }

func zlibBytes(p []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write(p)
	w.Close()
	return buf.Bytes()
}

// build returns a VMDK holding raw.
func build(raw []byte, o buildOpts) ([]byte, layout) {
	if o.grainSectors == 0 {
		o.grainSectors = 8
	}
	if o.capacity == 0 {
		o.capacity = uint64(len(raw)) / sectorSize
	}
	createType := "monolithicSparse"
	flags := uint32(flagNLDetect)
	var compress uint16
	version := uint32(1)
	if o.stream {
		createType, compress, version = "streamOptimized", compressDeflate, 3
		flags |= flagCompress | flagMarkers
	}
	if o.zeroGrain {
		flags |= flagZeroGrain
	}
	if o.desc == "" {
		o.desc = defaultDesc(createType, o.capacity)
	}
	grainBytes := o.grainSectors * sectorSize
	nGrains := (o.capacity + o.grainSectors - 1) / o.grainSectors
	nGTs := (nGrains + gtesPerGT - 1) / gtesPerGT
	gdSectors := sectorsFor(int(nGTs * 4))

	img := make([]byte, sectorSize*(1+testDescSectors))
	copy(img[sectorSize:], o.desc)
	lay := layout{gts: make([]uint64, nGTs), grains: map[uint64]uint64{}}
	gd := make([]byte, gdSectors*sectorSize)
	gts := make([][]byte, nGTs)

	grainData := func(g uint64) []byte {
		data := make([]byte, grainBytes)
		if start := g * grainBytes; start < uint64(len(raw)) {
			copy(data, raw[start:])
		}
		return data
	}
	isZero := func(p []byte) bool { return !bytes.ContainsFunc(p, func(r rune) bool { return r != 0 }) }

	emitGrains := func() {
		for g := uint64(0); g < nGrains; g++ {
			data := grainData(g)
			t := g / gtesPerGT
			if gts[t] == nil {
				gts[t] = make([]byte, gtBytes)
			}
			if isZero(data) {
				if o.zeroGrain {
					binary.LittleEndian.PutUint32(gts[t][(g%gtesPerGT)*4:], gteZeroed)
				}
				continue
			}
			at := uint64(len(img)) / sectorSize
			lay.grains[g] = at
			binary.LittleEndian.PutUint32(gts[t][(g%gtesPerGT)*4:], uint32(at))
			if !o.stream {
				img = append(img, data...)
				continue
			}
			lba, payload := g*o.grainSectors, zlibBytes(data)
			if o.grainHook != nil {
				lba, payload = o.grainHook(g, lba, payload)
			}
			rec := make([]byte, sectorsFor(grainMarkerSize+len(payload))*sectorSize)
			binary.LittleEndian.PutUint64(rec, lba)
			binary.LittleEndian.PutUint32(rec[8:], uint32(len(payload)))
			copy(rec[grainMarkerSize:], payload)
			img = append(img, rec...)
		}
	}
	emitTables := func() {
		for t, gt := range gts {
			if gt == nil || isZero(gt) && !o.zeroGrain {
				continue
			}
			if o.stream && o.footer {
				m := make([]byte, sectorSize)
				putMarker(m, gtBytes/sectorSize, 1)
				img = append(img, m...)
			}
			at := uint64(len(img)) / sectorSize
			lay.gts[t] = at
			binary.LittleEndian.PutUint32(gd[t*4:], uint32(at))
			img = append(img, gt...)
		}
		if o.stream && o.footer {
			m := make([]byte, sectorSize)
			putMarker(m, gdSectors, 2)
			img = append(img, m...)
		}
		lay.gd = uint64(len(img)) / sectorSize
		img = append(img, gd...)
	}

	if o.stream && o.footer {
		emitGrains()
		emitTables()
		tail := make([]byte, 3*sectorSize)
		putMarker(tail, 1, markerFooter)
		putHeader(tail[sectorSize:], version, flags, o.capacity, o.grainSectors, lay.gd, 1+testDescSectors, compress)
		putMarker(tail[2*sectorSize:], 0, markerEOS)
		img = append(img, tail...)
		putHeader(img, version, flags, o.capacity, o.grainSectors, gdAtEnd, 1+testDescSectors, compress)
		return img, lay
	}
	// Tables first, like qemu-img: reserve them, then fill in.
	for g := uint64(0); g < nGrains; g++ {
		t := g / gtesPerGT
		if gts[t] == nil {
			gts[t] = make([]byte, gtBytes)
		}
	}
	lay.gd = uint64(len(img)) / sectorSize
	img = append(img, gd...)
	tablesAt := len(img)
	img = append(img, make([]byte, int(nGTs)*gtBytes)...)
	overhead := uint64(len(img)) / sectorSize
	emitGrains()
	for t := range gts {
		at := uint64(tablesAt)/sectorSize + uint64(t)*gtBytes/sectorSize
		lay.gts[t] = at
		binary.LittleEndian.PutUint32(img[lay.gd*sectorSize+uint64(t)*4:], uint32(at))
		copy(img[at*sectorSize:], gts[t])
	}
	if o.stream {
		eos := make([]byte, sectorSize)
		img = append(img, eos...) // an all-zero marker is end-of-stream
	}
	putHeader(img, version, flags, o.capacity, o.grainSectors, lay.gd, overhead, compress)
	return img, lay
}
