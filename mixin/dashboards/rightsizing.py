"""Right-sizing, for capacity owners and the tenants' engineers: each pod that holds a
device alone, the profile it holds and the one that would have held its peak need over
the window, what that saves a month, and how far to trust it. Reads the right-sizing rules
(`alerts/gpuwork.rightsizing.rules.yml`, mixin/rightsizing.py)."""

from __future__ import annotations

from mixin import rightsizing as rs
from mixin.config import Config
from mixin.dashboards.panels import Board, Query

# The labels every column of the advice table is keyed by, so that Grafana's merge puts
# one pod on one row.
ROW = ("namespace", "pod", "tenant", "node", "device", "current_profile",
       "recommended_profile", "advice", "confidence", "memory_basis")  # fmt: skip
ADVICE_LABELS = ("node", "current_profile", "recommended_profile", "advice", "confidence",
                 "memory_basis")  # fmt: skip


def dashboard(config: Config) -> Board:
    b = Board(
        config,
        name="rightsizing",
        title="gpuwork / Right-sizing",
        description="The smallest MIG profile or whole GPU that would have held each pod's "
        f"peak need over the last {config.rightsizing_window}, and what it saves per month.",
        tags=["rightsizing"],
    )
    cl = b.cluster
    key = f"({cl}, namespace, pod, tenant, device)"
    row = f"({', '.join([cl, *ROW])})"
    advice = f"{rs.RECOMMENDED}{b.recorded()}"

    def on_advice(series: str) -> str:
        """`series` per pod with the labels of the pod's advice, for one table row."""
        return (
            f"max by {row} ({series}{b.recorded()} * on {key} group_left "
            f"({', '.join(ADVICE_LABELS)}) {advice})"
        )

    window = rs.seconds(config.rightsizing_window)
    b.stat(
        "Monthly saving, downsizing",
        unit="short",
        description="What the pods advised to downsize would save per month at the "
        "exporter's prices (--cost.gpu-hourly): the GPU fraction given back x the price "
        "of a GPU-hour x hours in a month.",
        queries=[f"sum({rs.SAVING}{b.recorded()} > 0) or vector(0)"],
    )
    b.stat(
        "Monthly cost, upsizing",
        unit="short",
        description="What the pods advised to upsize (their need did not fit) would cost "
        "more per month.",
        queries=[f"-sum({rs.SAVING}{b.recorded()} < 0) or vector(0)"],
    )

    def pods(kind: str) -> str:
        selector = b.recorded('advice="' + kind + '"')
        return f"count({rs.RECOMMENDED}{selector}) or vector(0)"

    b.stat(
        "Pods advised to downsize / upsize",
        unit="short",
        description="Pods whose peak need fits fewer compute slices, and pods whose need "
        "did not fit the profile they hold.",
        queries=[Query(pods("downsize"), "downsize"), Query(pods("upsize"), "upsize")],
    )
    b.stat(
        "Pods without enough data",
        unit="short",
        description=f"Pods with less than {config.rightsizing_window} of history: no advice "
        "until they have it.",
        queries=[pods("not_enough_data")],
    )
    b.table(
        "Right-sizing: current -> advised",
        unit="percentunit",
        description="One row per pod holding a device alone: the profile it holds "
        "(current_profile, `whole` for a whole GPU), the one advised, the monthly saving "
        "(negative: an upsize costs that much more), its needs and how much of the window "
        "its history covers. confidence: high (the engine's KV cache and SM activity), "
        "medium (memory used: no engine, the need is overstated), low (no activity signal, "
        "compute kept), none (not enough data). See docs/rightsizing.md.",
        queries=[
            Query(f"{on_advice(rs.HISTORY)} / {window}", column="history covered"),
            Query(on_advice(rs.SAVING), column="monthly saving", unit="short"),
            Query(on_advice(rs.COMPUTE_NEED), column="compute need (GPUs)", unit="short"),
            Query(on_advice(rs.MEMORY_NEED), column="memory need", unit="bytes"),
        ],
        hide=(cl, "device"),
        height=12,
    )
    b.bargauge(
        "Monthly saving by tenant",
        unit="short",
        description="The advised monthly saving of each tenant's pods, upsizes subtracted.",
        queries=[Query(f"sum by ({cl}, tenant) ({rs.SAVING}{b.recorded()})", "{{tenant}}")],
    )
    b.timeseries(
        "Advised monthly saving over time",
        unit="short",
        description="The sum of the advised monthly savings as the advice was recorded: it "
        "moves as pods come, go and change their load.",
        queries=[Query(f"sum by ({cl}) ({rs.SAVING}{b.recorded()})", "{{" + cl + "}}")],
    )
    held = f"group by {key} ({rs.HELD}{b.recorded()})"
    b.timeseries(
        "SM and tensor-core activity of the pods held alone",
        unit="percentunit",
        description="The activity the compute need is read from (SM activity, 0-1 of the "
        "pod's own device), and beside it the tensor-core activity: a tensor pipe is active "
        "only on an active SM, so it lies within SM activity; a pod busy on its tensor cores "
        "shows the two close. Absent without GPM (A100 MIG instances).",
        queries=[
            Query(f"max by {key} ({rs.ACTIVITY}{b.recorded()})", "{{namespace}}/{{pod}} SM"),
            Query(
                f"max by ({cl}, device) (gpuwork_device_tensor_active_ratio{b.raw()})\n"
                f"  * on ({cl}, device) group_right\n{held}",
                "{{namespace}}/{{pod}} tensor",
            ),
        ],
    )
    return b
