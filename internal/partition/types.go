package partition

// gptTypeName names well-known GPT partition type GUIDs, as util-linux does.
func gptTypeName(guid string) string {
	switch guid {
	case "c12a7328-f81f-11d2-ba4b-00a0c93ec93b":
		return "EFI System"
	case "21686148-6449-6e6f-744e-656564454649":
		return "BIOS boot"
	case "0fc63daf-8483-4772-8e79-3d69d8477de4":
		return "Linux filesystem"
	case "e6d6d379-f507-44c2-a23c-238f2a3df928":
		return "Linux LVM"
	case "0657fd6d-a4ab-43c4-84e5-0933c84b4f4f":
		return "Linux swap"
	case "a19d880f-05fc-4d3b-a006-743f0f84911e":
		return "Linux RAID"
	case "44479540-f297-41b2-9af7-d131d5f0458a":
		return "Linux root (x86)"
	case "4f68bce3-e8cd-4db1-96e7-fbcaf984b709":
		return "Linux root (x86-64)"
	case "b921b045-1df0-41c3-af44-4c6f280d3fae":
		return "Linux root (ARM-64)"
	case "8484680c-9521-48c6-9c11-b0720656f69e":
		return "Linux usr (x86-64)"
	case "933ac7e1-2eb4-4f13-b844-0e14e2aef915":
		return "Linux home"
	case "3b8f8425-20e0-4f3b-907f-1a25a76f98e8":
		return "Linux server data"
	case "bc13c2ff-59e6-4262-a352-b275fd6f7172":
		return "Linux extended boot"
	case "ca7d7ccb-63ed-4c53-861c-1742536059cc":
		return "Linux LUKS"
	case "8da63339-0007-60c0-c436-083ac8230908":
		return "Linux reserved"
	case "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7":
		return "Microsoft basic data"
	case "e3c9e316-0b5c-4db8-817d-f92df00215ae":
		return "Microsoft reserved"
	case "de94bba4-06d1-4d40-a16a-bfd50179d6ac":
		return "Windows recovery environment"
	case "9e1a2d38-c612-4316-aa26-8b49521e5a8b":
		return "PowerPC PReP boot"
	case "516e7cb6-6ecf-11d6-8ff8-00022d09712b":
		return "FreeBSD data"
	case "516e7cba-6ecf-11d6-8ff8-00022d09712b":
		return "FreeBSD ZFS"
	case "6a898cc3-1dd2-11b2-99a6-080020736631":
		return "Solaris root"
	case "48465300-0000-11aa-aa11-00306543ecac":
		return "Apple HFS/HFS+"
	case "7c3457ef-0000-11aa-aa11-00306543ecac":
		return "Apple APFS"
	}
	return ""
}

// mbrTypeName names well-known MBR partition types, as fdisk does.
func mbrTypeName(t byte) string {
	switch t {
	case 0x01:
		return "FAT12"
	case 0x04:
		return "FAT16 <32M"
	case 0x05:
		return "Extended"
	case 0x06:
		return "FAT16"
	case 0x07:
		return "HPFS/NTFS/exFAT"
	case 0x0b:
		return "W95 FAT32"
	case 0x0c:
		return "W95 FAT32 (LBA)"
	case 0x0e:
		return "W95 FAT16 (LBA)"
	case 0x0f:
		return "W95 Ext'd (LBA)"
	case 0x11:
		return "Hidden FAT12"
	case 0x12:
		return "Compaq diagnostics"
	case 0x17:
		return "Hidden HPFS/NTFS"
	case 0x1b:
		return "Hidden W95 FAT32"
	case 0x1c:
		return "Hidden W95 FAT32 (LBA)"
	case 0x27:
		return "Hidden NTFS WinRE"
	case 0x82:
		return "Linux swap / Solaris"
	case 0x83:
		return "Linux"
	case 0x85:
		return "Linux extended"
	case 0x8e:
		return "Linux LVM"
	case 0xa5:
		return "FreeBSD"
	case 0xa6:
		return "OpenBSD"
	case 0xa8:
		return "Darwin UFS"
	case 0xa9:
		return "NetBSD"
	case 0xaf:
		return "HFS / HFS+"
	case 0xde:
		return "Dell Utility"
	case 0xee:
		return "GPT"
	case 0xef:
		return "EFI (FAT-12/16/32)"
	case 0xfd:
		return "Linux raid autodetect"
	}
	return ""
}
