// SPDX-License-Identifier: MIT
using Vfio.Core;
using Vfio.Core.Interop;

namespace Vfio.Simulator;

/// <summary>
/// Private anonymous memory mapped through the simulated kernel's port (<see cref="SimulatedKernel.MapAnonymous"/>): real
/// process memory, which the model gives page frames when it is locked. Unmapping (dispose or finalization) returns the
/// frames and the locked-memory charge, as munmap of an mlocked range does.
/// </summary>
internal sealed class SimulatedAnonymousMapping : MemoryMapping
{
    private readonly SimulatedKernel _kernel;

    internal SimulatedAnonymousMapping(SimulatedKernel kernel, nint address, ulong length)
    {
        _kernel = kernel;
        Address = address;
        SetMapping(address, length, 0);
        Frames = new ulong[(int)(length / SimulatedPhysicalMemory.PageSize)];
    }

    /// <summary>The kernel that mapped it.</summary>
    internal SimulatedKernel Kernel => _kernel;

    /// <summary>The process address (the handle, readable after the mapping was closed).</summary>
    internal nint Address { get; }

    /// <summary>The frame of each page while locked (0 before).</summary>
    internal ulong[] Frames { get; }

    /// <summary>True once the model gave the pages frames and charged them to RLIMIT_MEMLOCK.</summary>
    internal bool Locked { get; set; }

    protected override bool ReleaseMapping()
    {
        _kernel.ReleaseAnonymous(this);
        return Libc.munmap(handle, (nuint)Length) == 0;
    }
}
