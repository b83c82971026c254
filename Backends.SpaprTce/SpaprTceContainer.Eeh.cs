// SPDX-License-Identifier: MIT
using System.Globalization;
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Backends.SpaprTce;

/// <summary>The state of an EEH partitionable endpoint (<c>VFIO_EEH_PE_STATE_*</c>).</summary>
public enum SpaprEehState
{
    /// <summary>MMIO and DMA work.</summary>
    Normal = VfioUapi.VFIO_EEH_PE_STATE_NORMAL,

    /// <summary>The PE's reset is asserted.</summary>
    Reset = VfioUapi.VFIO_EEH_PE_STATE_RESET,

    /// <summary>MMIO and DMA are stopped (frozen).</summary>
    Stopped = VfioUapi.VFIO_EEH_PE_STATE_STOPPED,

    /// <summary>DMA is stopped, MMIO works.</summary>
    StoppedDma = VfioUapi.VFIO_EEH_PE_STATE_STOPPED_DMA,

    /// <summary>The platform cannot tell.</summary>
    Unavailable = VfioUapi.VFIO_EEH_PE_STATE_UNAVAIL,
}

/// <summary>A PE reset step (<c>VFIO_EEH_PE_RESET_*</c>).</summary>
public enum SpaprEehReset
{
    /// <summary>Deassert the reset (after <see cref="Hot"/> or <see cref="Fundamental"/>).</summary>
    Deactivate = (int)VfioUapi.VFIO_EEH_PE_RESET_DEACTIVATE,

    /// <summary>Assert a hot reset.</summary>
    Hot = (int)VfioUapi.VFIO_EEH_PE_RESET_HOT,

    /// <summary>Assert a fundamental reset.</summary>
    Fundamental = (int)VfioUapi.VFIO_EEH_PE_RESET_FUNDAMENTAL,
}

public sealed partial class SpaprTceContainer
{
    private const string EehOperation = "VFIO_EEH_PE_OP";

    /// <summary>True when the host offers EEH (<c>VFIO_EEH</c>) and the container has exactly one group, so the PE
    /// operations below may be used.</summary>
    public bool EehAvailable => (Features & IommuBackendFeatures.Eeh) != 0 && Groups.Count == 1;

    /// <summary>Enables EEH on the group's PE.</summary>
    /// <exception cref="VfioException">No EEH, not exactly one group, or the kernel refused.</exception>
    public void EnableEeh() => EehOp(VfioUapi.VFIO_EEH_PE_ENABLE, "enable");

    /// <summary>Disables EEH on the group's PE.</summary>
    /// <exception cref="VfioException">No EEH, not exactly one group, or the kernel refused.</exception>
    public void DisableEeh() => EehOp(VfioUapi.VFIO_EEH_PE_DISABLE, "disable");

    /// <summary>Re-enables MMIO of a frozen PE.</summary>
    /// <exception cref="VfioException">No EEH, not exactly one group, or the kernel refused.</exception>
    public void UnfreezeMmio() => EehOp(VfioUapi.VFIO_EEH_PE_UNFREEZE_IO, "unfreeze MMIO");

    /// <summary>Re-enables DMA of a frozen PE.</summary>
    /// <exception cref="VfioException">No EEH, not exactly one group, or the kernel refused.</exception>
    public void UnfreezeDma() => EehOp(VfioUapi.VFIO_EEH_PE_UNFREEZE_DMA, "unfreeze DMA");

    /// <summary>Reads the PE's state.</summary>
    /// <returns>The state.</returns>
    /// <exception cref="VfioException">No EEH, not exactly one group, or the kernel refused.</exception>
    public SpaprEehState GetEehState() => (SpaprEehState)EehOp(VfioUapi.VFIO_EEH_PE_GET_STATE, "get state");

    /// <summary>Asserts or deasserts a PE reset.</summary>
    /// <param name="reset">The step.</param>
    /// <exception cref="VfioException">No EEH, not exactly one group, or the kernel refused.</exception>
    public void ResetPe(SpaprEehReset reset)
    {
        if (!Enum.IsDefined(reset))
        {
            throw new ArgumentOutOfRangeException(nameof(reset), reset, "Deactivate, Hot or Fundamental.");
        }
        EehOp((uint)reset, "reset " + reset.ToString());
    }

    /// <summary>Reconfigures the PE's bridges after a reset.</summary>
    /// <exception cref="VfioException">No EEH, not exactly one group, or the kernel refused.</exception>
    public void ConfigurePe() => EehOp(VfioUapi.VFIO_EEH_PE_CONFIGURE, "configure");

    /// <summary>Injects an EEH error into the PE (test of a driver's recovery).</summary>
    /// <param name="is64Bit">A 64-bit (true) or 32-bit error.</param>
    /// <param name="function">The error function, 0-19 (load/store/DMA, address or data...).</param>
    /// <param name="address">The address to match.</param>
    /// <param name="mask">The mask applied to <paramref name="address"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="function"/> is not 0-19.</exception>
    /// <exception cref="VfioException">No EEH, not exactly one group, or the kernel refused.</exception>
    public unsafe void InjectEehError(bool is64Bit, int function, ulong address, ulong mask)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(function);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(function, 19);
        CheckEeh("inject an error");
        var op = new vfio_eeh_pe_op
        {
            argsz = (uint)sizeof(vfio_eeh_pe_op),
            op = VfioUapi.VFIO_EEH_PE_INJECT_ERR,
            err = new vfio_eeh_pe_err { type = is64Bit ? 1u : 0u, func = (uint)function, addr = address, mask = mask },
        };
        VfioException.ThrowIfFailed(Kernel.Ioctl(Fd, VfioUapi.VFIO_EEH_PE_OP, &op), EehOperation, Name);
    }

    private unsafe int EehOp(uint operation, string what)
    {
        CheckEeh(what);
        var op = new vfio_eeh_pe_op { argsz = (uint)sizeof(vfio_eeh_pe_op), op = operation };
        return VfioException.ThrowIfFailed(Kernel.Ioctl(Fd, VfioUapi.VFIO_EEH_PE_OP, &op), EehOperation, Name);
    }

    private void CheckEeh(string what)
    {
        if ((Features & IommuBackendFeatures.Eeh) == 0)
        {
            throw new VfioException(EehOperation, Name, $"cannot {what}: the host does not offer EEH (VFIO_CHECK_EXTENSION(VFIO_EEH) is 0)",
                "EEH needs a POWER host with EEH enabled (on unless booted with eeh=off) and a PE for the device: bare-metal PowerNV has one per group; a pseries guest only for a device passed through from an EEH-capable host (QEMU's emulated devices have none).");
        }
        IReadOnlyList<int> groups = Groups;
        if (groups.Count != 1)
        {
            throw new VfioException(EehOperation, Name,
                string.Create(CultureInfo.InvariantCulture,
                    $"cannot {what}: EEH PE operations need a container with exactly one IOMMU group, and {Name} has {groups.Count} (groups {string.Join(", ", groups)})"),
                "Attach the device to a DMA space of its own, so that its group gets a container of its own (or detach the other groups' devices first).");
        }
    }
}
