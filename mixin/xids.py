"""Which XID codes page whom: NVIDIA's XID catalog, as data, in one place.

Source: NVIDIA, "Analyzing Xid Errors with the Xid Catalog", the catalog for Ampere and
newer GPUs (https://docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html and its
spreadsheet Xid-Catalog.xlsx), the revision that lists codes up to 172 (drivers R565 to
R580), read in 2025. Each code below carries the catalog's column "Resolution Bucket
(Immediate Action)" unchanged; `CATALOG` names that revision. Codes the catalog marks
"Unused", and those it gives no action (162-172 in that revision), are left out: they
reach the platform team as unclassified (`GpuworkGpuXidUnclassified`) until someone
classifies them here.

A bucket says who acts (`FAULT_DOMAIN`):

- the tenant, when restarting the application is the remedy (`RESTART_APP`; and
  `WORKFLOW_XID_45`, the clean-up of an application's contexts after another error,
  which is paged on its own by that other XID where there is one);
- the platform team, when the GPU, the node or the fabric needs a hand (`RESET_GPU`,
  `RESTART_BM`, `WORKFLOW_XID_48`, the NVLink workflows, and the rest);
- nobody, for `IGNORE` (informational: a row remapped, single-bit errors corrected).

`SEVERITY` splits the platform's codes: the GPU must be reset or the node rebooted
(critical, a page) or someone must look into it (warning, a ticket).
"""

from __future__ import annotations

from typing import Final, Literal

CATALOG: Final = (
    "NVIDIA Xid Catalog (Ampere and newer), Resolution Bucket (Immediate Action); "
    "revision with codes up to 172, read 2025"
)
CATALOG_URL: Final = "https://docs.nvidia.com/deploy/xid-errors/analyzing-xid-catalog.html"

FaultDomain = Literal["tenant", "platform"]

# code -> (mnemonic, Resolution Bucket (Immediate Action)), as in the catalog.
XIDS: Final[dict[int, tuple[str, str]]] = {
    8: ("ROBUST_CHANNEL_FIFO_ERROR_IDLE_TIMEOUT", "RESTART_APP"),
    11: ("ROBUST_CHANNEL_GR_ERROR_MISSING_HW", "RESTART_APP"),
    13: ("ROBUST_CHANNEL_GR_EXCEPTION", "RESTART_APP"),
    14: ("ROBUST_CHANNEL_FAKE_ERROR", "IGNORE"),
    25: ("ROBUST_CHANNEL_GR_ILLEGAL_NOTIFY", "RESTART_APP"),
    31: ("ROBUST_CHANNEL_FIFO_ERROR_MMU_ERR_FLT", "RESTART_APP"),
    32: ("ROBUST_CHANNEL_PBDMA_ERROR", "RESTART_APP"),
    37: ("ROBUST_CHANNEL_FECS_ERR_UNIMP_FIRMWARE_METHOD", "IGNORE"),
    38: ("ROBUST_CHANNEL_FECS_ERR_WATCHDOG_TIMEOUT", "IGNORE"),
    39: ("ROBUST_CHANNEL_CE0_ERROR", "RESTART_APP"),
    40: ("ROBUST_CHANNEL_CE1_ERROR", "RESTART_APP"),
    41: ("ROBUST_CHANNEL_CE2_ERROR", "RESTART_APP"),
    43: ("ROBUST_CHANNEL_RESETCHANNEL_VERIF_ERROR", "IGNORE"),
    44: ("ROBUST_CHANNEL_GR_FAULT_DURING_CTXSW", "IGNORE"),
    45: ("ROBUST_CHANNEL_PREEMPTIVE_REMOVAL", "WORKFLOW_XID_45"),
    46: ("ROBUST_CHANNEL_GPU_TIMEOUT_ERROR", "RESET_GPU"),
    48: ("ROBUST_CHANNEL_GPU_ECC_DBE", "WORKFLOW_XID_48"),
    54: ("SILENT_RUNNING_PWR_REDUCED_CLOCKING", "CHECK_MECHANICALS"),
    60: ("ROBUST_CHANNEL_SEC2_ERROR", "RESTART_APP"),
    62: ("PMU_HALT_ERROR", "RESET_GPU"),
    63: ("INFOROM_DRAM_RETIREMENT_EVENT", "IGNORE"),
    64: ("INFOROM_DRAM_RETIREMENT_FAILURE", "RESET_GPU"),
    66: ("ROBUST_CHANNEL_FECS_ERR_REG_ACCESS_VIOLATION", "IGNORE"),
    67: ("ROBUST_CHANNEL_FECS_ERR_VERIF_VIOLATION", "IGNORE"),
    68: ("ROBUST_CHANNEL_NVDEC0_ERROR", "RESTART_APP"),
    69: ("ROBUST_CHANNEL_GR_CLASS_ERROR", "RESTART_APP"),
    70: ("ROBUST_CHANNEL_CE3_ERROR", "RESTART_APP"),
    71: ("ROBUST_CHANNEL_CE4_ERROR", "RESTART_APP"),
    72: ("ROBUST_CHANNEL_CE5_ERROR", "RESTART_APP"),
    74: ("NVLINK_ERROR", "WORKFLOW_NVLINK_ERR"),
    75: ("ROBUST_CHANNEL_CE6_ERROR", "RESTART_APP"),
    76: ("ROBUST_CHANNEL_CE7_ERROR", "RESTART_APP"),
    77: ("ROBUST_CHANNEL_CE8_ERROR", "RESTART_APP"),
    78: ("VGPU_START_ERROR", "UPDATE_SWFW"),
    79: ("ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS", "RESTART_BM"),
    80: ("PBDMA_PUSHBUFFER_CRC_MISMATCH", "RESTART_APP"),
    82: ("ROBUST_CHANNEL_NVJPG0_ERROR", "RESTART_APP"),
    83: ("ROBUST_CHANNEL_NVDEC1_ERROR", "RESTART_APP"),
    84: ("ROBUST_CHANNEL_NVDEC2_ERROR", "RESTART_APP"),
    85: ("ROBUST_CHANNEL_CE9_ERROR", "RESTART_APP"),
    86: ("ROBUST_CHANNEL_OFA0_ERROR", "RESTART_APP"),
    88: ("ROBUST_CHANNEL_NVDEC3_ERROR", "RESTART_APP"),
    89: ("ROBUST_CHANNEL_NVDEC4_ERROR", "RESTART_APP"),
    92: ("EXCESSIVE_SBE_INTERRUPTS", "IGNORE"),
    93: ("INFOROM_ERASE_LIMIT_EXCEEDED", "IGNORE"),
    94: ("ROBUST_CHANNEL_CONTAINED_ERROR", "RESTART_APP"),
    95: ("ROBUST_CHANNEL_UNCONTAINED_ERROR", "RESET_GPU"),
    **{code: (f"ROBUST_CHANNEL_NVDEC{code - 91}_ERROR", "RESTART_APP") for code in (96, 97, 98)},
    **{code: (f"ROBUST_CHANNEL_NVJPG{code - 98}_ERROR", "RESTART_APP") for code in range(99, 106)},
    106: ("SMBPBI_TEST_MESSAGE", "IGNORE"),
    107: ("SMBPBI_TEST_MESSAGE_SILENT", "IGNORE"),
    108: ("NVLINK_REMOTE_TRANSLATION_ERROR", "IGNORE"),
    109: ("ROBUST_CHANNEL_CTXSW_TIMEOUT_ERROR", "RESET_GPU"),
    110: ("SEC_FAULT_ERROR", "RESET_GPU"),
    119: ("GSP_RPC_TIMEOUT", "RESET_GPU"),
    120: ("GSP_ERROR", "RESET_GPU"),
    121: ("C2C_ERROR", "IGNORE"),
    **{code: (f"ROBUST_CHANNEL_CE{code - 116}_ERROR", "RESTART_APP") for code in range(126, 136)},
    136: ("ALI_TRAINING_FAIL", "RESET_GPU"),
    137: ("NVLINK_PRIV_ERR", "IGNORE"),
    139: ("ROBUST_CHANNEL_OFA1_ERROR", "RESTART_APP"),
    140: ("UNRECOVERABLE_ECC_ERROR_ESCAPE", "RESET_GPU"),
    141: ("ROBUST_CHANNEL_FAST_PATH_ERROR", "IGNORE"),
    142: ("ROBUST_CHANNEL_NVENC3_ERROR", "CONTACT_SUPPORT"),
    143: ("GPU_INIT_ERROR", "RESET_GPU"),
    144: ("NVLINK_SAW_ERROR", "WORKFLOW_NVLINK5_ERR"),
    145: ("NVLINK_RLW_ERROR", "WORKFLOW_NVLINK5_ERR"),
    146: ("NVLINK_TLW_ERROR", "WORKFLOW_NVLINK5_ERR"),
    147: ("NVLINK_TREX_ERROR", "WORKFLOW_NVLINK5_ERR"),
    148: ("NVLINK_NVLPW_CTRL_ERROR", "WORKFLOW_NVLINK5_ERR"),
    149: ("NVLINK_NETIR_ERROR", "WORKFLOW_NVLINK5_ERR"),
    150: ("NVLINK_MSE_ERROR", "WORKFLOW_NVLINK5_ERR"),
    151: ("ROBUST_CHANNEL_KEY_ROTATION_ERROR", "RESTART_VM"),
    152: ("ROBUST_CHANNEL_DLA_SMMU_ERROR", "IGNORE"),
    153: ("ROBUST_CHANNEL_DLA_TIMEOUT", "IGNORE"),
    154: ("GPU_RECOVERY_ACTION_CHANGED", "XID_154"),
    155: ("NVLINK_SW_DEFINED_ERROR", "RESET_GPU"),
    156: ("RESOURCE_RETIREMENT_EVENT", "RESET_GPU"),
    157: ("RESOURCE_RETIREMENT_FAILURE", "IGNORE"),
    158: ("GPU_FATAL_TIMEOUT", "RESET_GPU"),
    159: ("ROBUST_CHANNEL_CHI_NON_DATA_ERROR", "CHECK_UVM"),
    160: ("CHANNEL_RETIREMENT_EVENT", "IGNORE"),
    161: ("CHANNEL_RETIREMENT_FAILURE", "IGNORE"),
}

# bucket -> who acts; None: nobody is paged.
FAULT_DOMAIN: Final[dict[str, FaultDomain | None]] = {
    "RESTART_APP": "tenant",
    "WORKFLOW_XID_45": "tenant",
    "RESET_GPU": "platform",
    "RESTART_BM": "platform",
    "WORKFLOW_XID_48": "platform",
    "WORKFLOW_NVLINK_ERR": "platform",
    "WORKFLOW_NVLINK5_ERR": "platform",
    "CHECK_MECHANICALS": "platform",
    "UPDATE_SWFW": "platform",
    "RESTART_VM": "platform",
    "CHECK_UVM": "platform",
    "CONTACT_SUPPORT": "platform",
    "XID_154": "platform",  # the driver names the recovery it now needs (reset, reboot, drain)
    "IGNORE": None,
}

# The platform's buckets that take the GPU or the node out of service: a page.
RESET_BUCKETS: Final = frozenset({"RESET_GPU", "RESTART_BM", "WORKFLOW_XID_48"})


def codes(fault_domain: FaultDomain | None, *, reset: bool | None = None) -> list[int]:
    """The codes whose bucket pages `fault_domain` (None: nobody), sorted; for the
    platform, `reset` picks the buckets of RESET_BUCKETS (True) or the others (False)."""
    return sorted(
        code
        for code, (_, bucket) in XIDS.items()
        if FAULT_DOMAIN[bucket] == fault_domain
        and (reset is None or (bucket in RESET_BUCKETS) == reset)
    )


def regex(selected: list[int]) -> str:
    """A label matcher's regex matching exactly these codes."""
    return "|".join(str(code) for code in selected)


def buckets() -> dict[str, list[int]]:
    """bucket -> its codes, both sorted: what `label_replace` turns into a label."""
    out: dict[str, list[int]] = {}
    for code, (_, bucket) in sorted(XIDS.items()):
        out.setdefault(bucket, []).append(code)
    return dict(sorted(out.items()))
