// SPDX-License-Identifier: MIT
using Microsoft.Extensions.DependencyInjection.Extensions;
using Vfio.Core;
using Vfio.Simulator;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Runs a host's VFIO services on the simulator instead of the running kernel.</summary>
public static class SimulatorVfioBuilderExtensions
{
    /// <summary>
    /// Replaces the kernel the VFIO services talk to (<see cref="IKernel"/>, by default the running Linux kernel) with a
    /// <see cref="SimulatedKernel"/> of <paramref name="topology"/>, owned and disposed by the service provider.
    /// Everything else — backends, options, fd passing — is unchanged, so a program runs the same code on both.
    /// </summary>
    /// <param name="builder">The builder returned by <c>AddVfio</c>.</param>
    /// <param name="topology">The machine; null for <see cref="SimulatedMachines.Testbed"/>.</param>
    /// <returns>The builder.</returns>
    public static VfioBuilder UseSimulator(this VfioBuilder builder, SimulatedTopology? topology = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        SimulatedTopology machine = topology ?? SimulatedMachines.Testbed();
        builder.Services.RemoveAll<IKernel>();
        builder.Services.AddSingleton(_ => new SimulatedKernel(machine));
        builder.Services.AddSingleton<IKernel>(sp => sp.GetRequiredService<SimulatedKernel>());
        return builder;
    }
}
