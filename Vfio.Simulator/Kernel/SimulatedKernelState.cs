// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>What a <see cref="SimulatedKernel"/> holds at one moment (<see cref="SimulatedKernel.GetState"/>): after a
/// complete teardown every count is zero.</summary>
/// <param name="OpenFiles">Simulated files with an open fd (containers, groups, devices, iommufds, cdevs).</param>
/// <param name="DmaMappings">Type1 mappings of every container plus mapped areas of every IOAS.</param>
/// <param name="IommuFdObjects">Live iommufd objects (IOAS, HWPT, bound devices, ...) over every open iommufd.</param>
/// <param name="PinnedPages">Pages charged to RLIMIT_MEMLOCK (the kernel's <c>locked_vm</c>).</param>
public readonly record struct SimulatedKernelState(int OpenFiles, int DmaMappings, int IommuFdObjects, ulong PinnedPages)
{
    /// <summary>True when nothing is open, mapped or pinned.</summary>
    public bool IsEmpty => OpenFiles == 0 && DmaMappings == 0 && IommuFdObjects == 0 && PinnedPages == 0;
}
