// SPDX-License-Identifier: MIT
namespace Vfio.Simulator;

/// <summary>Deferred device work (a DMA engine, a computation) run later on the thread pool under the kernel lock,
/// never inline in the call that scheduled it.</summary>
internal static class DeviceWork
{
    internal static void Schedule(SimulatedKernel kernel, TimeSpan delay, Action work)
        => _ = Task.Run(async () =>
        {
            if (delay > TimeSpan.Zero)
            {
                await Task.Delay(delay).ConfigureAwait(false);
            }
            _ = kernel.RunDeviceWork(static w => w(), work);
        });
}
