"""Node and device, for whoever looks after one node: every GPU and MIG instance on it
with its memory, activity, power, clocks, errors, and who holds it."""

from __future__ import annotations

from mixin.config import Config
from mixin.dashboards.panels import RATE_INTERVAL, Board, Query, Variable

NODE = 'node="$node"'
GPU = 'gpu_uuid=~"$gpu"'
CORRECTABLE = 'type="correctable"'
UNCORRECTABLE = 'type="uncorrectable"'


def dashboard(config: Config) -> Board:
    job = config.job_selector
    cl = config.cluster_label
    b = Board(
        config,
        name="node",
        title="gpuwork / Node and device",
        description="One node's GPUs and MIG instances: memory, activity, power, clocks, "
        "errors and who holds each device.",
        tags=["node"],
        variables=[
            Variable(
                name="node",
                label="Node",
                source=f'gpuwork_gpu_info{{{job}, {cl}=~"$cluster"}}',
                label_name="node",
            ),
            Variable(
                name="gpu",
                label="GPU",
                source=f'gpuwork_gpu_info{{{job}, {cl}=~"$cluster", node="$node"}}',
                label_name="gpu_uuid",
                include_all=True,
                multi=True,
            ),
        ],
    )
    raw = b.raw
    gpu_info = f"gpuwork_gpu_info{raw(NODE, GPU)}"
    device_info = f"gpuwork_device_info{raw(NODE, GPU)}"

    def per_gpu(series: str, *keep: str) -> str:
        """A GPU series on the chosen node and GPUs, with its GPU index."""
        by = ", ".join(["gpu_uuid", "gpu_index", *keep])
        return f"max by ({by}) (({series}) * on ({cl}, gpu_uuid) group_left (gpu_index) {gpu_info})"

    def per_device(series: str, *keep: str) -> str:
        """A device series on the chosen node and GPUs, with its GPU and MIG profile."""
        by = ", ".join(["device", "gpu_uuid", "mig_profile", *keep])
        return (
            f"max by ({by}) (({series}) * on ({cl}, device) group_left (gpu_uuid, mig_profile) "
            f"{device_info})"
        )

    # -- the node now ---------------------------------------------------------------
    b.stat(
        "GPUs",
        unit="short",
        description="Physical GPUs on the node (gpuwork_gpu_info).",
        queries=[f"count({gpu_info})"],
        width=4,
    )
    b.stat(
        "Devices",
        unit="short",
        description="Devices Kubernetes can allocate: whole GPUs and MIG instances "
        "(gpuwork_device_info).",
        queries=[f"count({device_info})"],
        width=4,
    )
    b.stat(
        "Devices held",
        unit="short",
        description="Devices at least one container holds (gpuwork_device_allocation).",
        queries=[f"count({per_device(f'gpuwork_device_allocation{raw()}')})"],
        width=4,
    )
    b.stat(
        "Memory in use",
        unit="percentunit",
        description="Device memory in use over device memory in all, on the chosen GPUs.",
        queries=[
            f"sum({per_device(f'gpuwork_device_memory_used_bytes{raw()}')}) / "
            f"sum({per_device(f'gpuwork_device_memory_total_bytes{raw()}')})"
        ],
        width=4,
    )
    b.stat(
        "Power",
        unit="watt",
        description="Board power draw of the chosen GPUs, summed.",
        queries=[f"sum({per_gpu(f'gpuwork_gpu_power_watts{raw()}')})"],
        width=4,
    )
    b.stat(
        "Lost GPUs",
        unit="short",
        description="GPUs that answer GPU_IS_LOST: fell off the bus, need a reset.",
        queries=[f"sum({per_gpu(f'gpuwork_gpu_lost{raw()}')})"],
        width=4,
        red_from=1,
    )

    # -- every device, and who holds it ---------------------------------------------
    b.table(
        "Devices",
        unit="bytes",
        description="Every whole GPU and MIG instance on the chosen GPUs: memory, SM "
        "activity (absent where the hardware cannot tell: MIG on A100), compute "
        "processes and the share of a GPU it is.",
        queries=[
            Query(per_device(f"gpuwork_device_memory_used_bytes{raw()}"), column="memory used"),
            Query(per_device(f"gpuwork_device_memory_total_bytes{raw()}"), column="memory total"),
            Query(
                per_device(f"gpuwork_device_sm_active_ratio{raw()}"),
                column="SM active",
                unit="percentunit",
            ),
            Query(per_device(f"gpuwork_device_processes{raw()}"), column="processes", unit="short"),
            Query(
                per_device(f"gpuwork_device_gpu_fraction{raw()}"),
                column="GPU fraction",
                unit="short",
            ),
        ],
        newline=True,
    )
    holders = (
        f"gpuwork_device_allocation{raw()} * on ({cl}, device) group_left (state) "
        f"(gpuwork_device_state{raw()} == 1)"
    )
    b.table(
        "Who holds each device",
        unit="percentunit",
        description="Each container holding a device on the chosen GPUs: its tenant, "
        "namespace and pod, the share of the device it holds (1 dedicated, 1/N "
        "time-sliced) and the device's state now.",
        queries=[
            Query(
                per_device(holders, "state", "tenant", "namespace", "pod", "container"),
                column="share held",
            )
        ],
    )

    # -- activity and memory --------------------------------------------------------
    b.timeseries(
        "SM activity per device",
        unit="percentunit",
        description="SM activity of each device (whole GPU or MIG instance), 0-1, "
        "over each collection interval; activity_source on gpuwork_device_info says "
        "where it comes from.",
        queries=[
            Query(
                per_device(f"gpuwork_device_sm_active_ratio{raw()}"),
                "{{mig_profile}} {{device}}",
            )
        ],
        max_value=1,
    )
    b.timeseries(
        "SM activity per GPU (MIG instances weighted)",
        unit="percentunit",
        description="Each GPU's activity: a MIG GPU's is its instances' activity "
        "weighted by their share of it (gpu_uuid:gpuwork_device_sm_active_ratio:"
        "fraction_weighted), a whole GPU's its own.",
        queries=[
            Query(
                f"gpu_uuid:gpuwork_device_sm_active_ratio:fraction_weighted{b.recorded(NODE, GPU)}",
                "{{gpu_uuid}}",
            )
        ],
        max_value=1,
    )
    b.timeseries(
        "Tensor-core and DRAM activity per device",
        unit="percentunit",
        description="From GPM (Hopper and newer), over each collection interval: the share "
        "of time the device's SMs ran tensor-core work (gpuwork_device_tensor_active_ratio) "
        "and its DRAM bandwidth used over the peak (gpuwork_device_dram_bandwidth_ratio). "
        "Absent on boards without GPM.",
        queries=[
            Query(
                per_device(f"gpuwork_device_tensor_active_ratio{raw()}"),
                "tensor {{mig_profile}} {{device}}",
            ),
            Query(
                per_device(f"gpuwork_device_dram_bandwidth_ratio{raw()}"),
                "DRAM {{mig_profile}} {{device}}",
            ),
        ],
        max_value=1,
    )
    b.timeseries(
        "Memory used per device",
        unit="bytes",
        description="Device memory in use, per whole GPU or MIG instance.",
        queries=[
            Query(
                per_device(f"gpuwork_device_memory_used_bytes{raw()}"),
                "{{mig_profile}} {{device}}",
            )
        ],
    )
    b.timeseries(
        "Device states",
        unit="short",
        description="Devices on the chosen GPUs in each state (busy, allocated_idle, "
        "allocated_no_process, unallocated).",
        queries=[
            Query(
                f"sum by (state) ({per_device(f'gpuwork_device_state{raw()}', 'state')})",
                "{{state}}",
            )
        ],
        stack=True,
    )

    # -- power, heat and clocks -----------------------------------------------------
    b.timeseries(
        "Power per GPU",
        unit="watt",
        description="Board power draw per GPU.",
        queries=[Query(per_gpu(f"gpuwork_gpu_power_watts{raw()}"), "GPU {{gpu_index}}")],
    )
    device_watts = (
        f"rate(gpuwork_device_energy_joules_total{raw()}[{RATE_INTERVAL}]) or "
        f"rate(gpuwork_device_energy_estimated_joules_total{raw()}[{RATE_INTERVAL}])"
    )
    b.timeseries(
        "Power per device",
        unit="watt",
        description="Each device's mean power from its energy counter: a whole GPU's "
        "measured (gpuwork_device_energy_joules_total), a MIG instance's its estimated "
        "share of its GPU's (gpuwork_device_energy_estimated_joules_total: idle power by "
        "GPU fraction, the rest by SM activity). Absent for MIG instances without GPM.",
        queries=[Query(per_device(device_watts), "{{mig_profile}} {{device}}")],
    )
    b.timeseries(
        "Temperature per GPU",
        unit="celsius",
        description="GPU temperature, and HBM temperature on boards that report it.",
        queries=[
            Query(
                per_gpu(f"gpuwork_gpu_temperature_celsius{raw()}", "sensor"),
                "GPU {{gpu_index}} {{sensor}}",
            )
        ],
    )
    b.timeseries(
        "SM clock per GPU",
        unit="hertz",
        description="Current SM clock per GPU.",
        queries=[Query(per_gpu(f"gpuwork_gpu_sm_clock_hertz{raw()}"), "GPU {{gpu_index}}")],
    )
    b.timeseries(
        "Memory clock per GPU",
        unit="hertz",
        description="Current memory clock per GPU.",
        queries=[Query(per_gpu(f"gpuwork_gpu_memory_clock_hertz{raw()}"), "GPU {{gpu_index}}")],
    )
    b.timeseries(
        "Clock throttle reasons",
        unit="short",
        description="The reasons NVML gives for holding each GPU's clocks down, 1 while "
        "active (gpu_idle is normal on an idle GPU).",
        queries=[
            Query(
                per_gpu(f"gpuwork_gpu_clock_throttle_active{raw()}", "reason"),
                "GPU {{gpu_index}} {{reason}}",
            )
        ],
        width=24,
    )

    # -- errors ---------------------------------------------------------------------
    b.timeseries(
        "XID errors",
        unit="short",
        description="XID critical errors per second, per GPU, the device they hit (a "
        "MIG instance, or the GPU itself) and XID code.",
        queries=[
            Query(
                per_gpu(
                    f"rate(gpuwork_gpu_xid_errors_total{raw()}[{RATE_INTERVAL}])", "device", "xid"
                ),
                "GPU {{gpu_index}} {{device}} XID {{xid}}",
            )
        ],
    )
    b.timeseries(
        "ECC errors and PCIe replays",
        unit="short",
        description="ECC errors (corrected, uncorrected) and PCIe replays per second, per GPU.",
        queries=[
            Query(
                per_gpu(f"rate(gpuwork_gpu_ecc_errors_total{raw()}[{RATE_INTERVAL}])", "type"),
                "GPU {{gpu_index}} ECC {{type}}",
            ),
            Query(
                per_gpu(f"rate(gpuwork_gpu_pcie_replays_total{raw()}[{RATE_INTERVAL}])"),
                "GPU {{gpu_index}} PCIe replays",
            ),
        ],
    )
    b.table(
        "Memory row remapping",
        unit="short",
        description="Per GPU: rows remapped over its life by type, whether a remap "
        "waits for a reset, whether one failed (the GPU needs service).",
        queries=[
            Query(
                per_gpu(f"gpuwork_gpu_remapped_rows{raw(CORRECTABLE)}"),
                column="remapped (correctable)",
            ),
            Query(
                per_gpu(f"gpuwork_gpu_remapped_rows{raw(UNCORRECTABLE)}"),
                column="remapped (uncorrectable)",
            ),
            Query(per_gpu(f"gpuwork_gpu_row_remap_pending{raw()}"), column="remap pending"),
            Query(per_gpu(f"gpuwork_gpu_row_remap_failed{raw()}"), column="remap failed"),
        ],
    )
    return b
