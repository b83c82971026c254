// SPDX-License-Identifier: MIT
using System.Diagnostics;
using Vfio.Core;
using Vfio.Devices.Pci;

namespace Vfio.Samples.Edu;

/// <summary>
/// A driver for QEMU's <c>edu</c> device (hw/misc/edu.c) over an attached device: identification, liveness,
/// factorial, interrupt raise/ack and the DMA engine, through BAR0 mapped (<c>mmap</c>) or by <c>pread</c>/<c>pwrite</c>.
/// The PCI side (the command register, BAR0's mapping) is Devices.Pci's <see cref="VfioPciDevice"/>.
/// </summary>
/// <remarks>Registers below 0x80 take 32-bit accesses only; the DMA registers at 0x80 and above take 64-bit ones.
/// The DMA engine works on a 4 KiB buffer at device address 0x40000 and, by default, a 28-bit DMA mask.</remarks>
public sealed class EduDriver : IDisposable
{
    /// <summary>edu's identification register value: major 1, minor 0, "ed".</summary>
    public const uint Identification = 0x010000ed;

    /// <summary>The device address of edu's internal DMA buffer.</summary>
    public const ulong BufferAddress = 0x40000;

    /// <summary>The size of edu's internal DMA buffer.</summary>
    public const int BufferSize = 4096;

    /// <summary>edu's default DMA mask (28 bits).</summary>
    public const ulong DefaultDmaMask = 0x0fff_ffff;

    /// <summary>The MSI vector/INTx value edu sets when a DMA with "raise interrupt" completes.</summary>
    public const uint DmaInterruptStatus = 0x100;

    private const int Bar0 = VfioPciRegion.Bar0;
    private readonly VfioPciDevice _pci;
    private readonly VfioDevice _device;
    private readonly VfioRegionMapping? _bar0;

    /// <summary>Opens the driver on an attached edu.</summary>
    /// <param name="device">The edu device; it stays attached when the driver is disposed.</param>
    /// <param name="useMmap">True to access BAR0 through a mapping, false through pread/pwrite.</param>
    public EduDriver(AttachedDevice device, bool useMmap)
    {
        ArgumentNullException.ThrowIfNull(device);
        _pci = new VfioPciDevice(device);
        _device = device.Device;
        try
        {
            _bar0 = useMmap ? _pci.MapBar(Bar0) : null;
        }
        catch
        {
            _pci.Dispose();
            throw;
        }
    }

    /// <summary>The device.</summary>
    public VfioDevice Device => _device;

    /// <summary>The device's PCI view (configuration space, BARs, resets).</summary>
    public VfioPciDevice Pci => _pci;

    /// <summary>Reads a 32-bit register below 0x80.</summary>
    /// <param name="offset">The register.</param>
    /// <returns>Its value.</returns>
    public uint Read32(ulong offset) => _bar0 is { } bar ? bar.Read32(offset) : _device.ReadRegion32(Bar0, offset);

    /// <summary>Writes a 32-bit register below 0x80.</summary>
    /// <param name="offset">The register.</param>
    /// <param name="value">The value.</param>
    public void Write32(ulong offset, uint value)
    {
        if (_bar0 is { } bar)
        {
            bar.Write32(offset, value);
        }
        else
        {
            _device.WriteRegion32(Bar0, offset, value);
        }
    }

    /// <summary>Reads a 64-bit DMA register (0x80 and above).</summary>
    /// <param name="offset">The register.</param>
    /// <returns>Its value.</returns>
    public ulong Read64(ulong offset) => _bar0 is { } bar ? bar.Read64(offset) : _device.ReadRegion64(Bar0, offset);

    /// <summary>Writes a 64-bit DMA register (0x80 and above).</summary>
    /// <param name="offset">The register.</param>
    /// <param name="value">The value.</param>
    public void Write64(ulong offset, ulong value)
    {
        if (_bar0 is { } bar)
        {
            bar.Write64(offset, value);
        }
        else
        {
            _device.WriteRegion64(Bar0, offset, value);
        }
    }

    /// <summary>The identification register (0x00).</summary>
    public uint ReadIdentification() => Read32(0x00);

    /// <summary>The liveness check (0x04): edu returns the inverse of what was written.</summary>
    /// <param name="value">The value to write.</param>
    /// <returns>What edu returned.</returns>
    public uint CheckLiveness(uint value)
    {
        Write32(0x04, value);
        return Read32(0x04);
    }

    /// <summary>Computes n! on the device (0x08, busy bit 0 of 0x20).</summary>
    /// <param name="n">The argument.</param>
    /// <param name="timeout">How long to wait.</param>
    /// <returns>The result register (32-bit, wraps).</returns>
    public uint Factorial(uint n, TimeSpan timeout)
    {
        Write32(0x08, n);
        WaitWhile(() => (Read32(0x20) & 1) != 0, timeout, "factorial");
        return Read32(0x08);
    }

    /// <summary>Sets Bus Master Enable in the command register (an MSI and every DMA are memory writes by the device).</summary>
    public void EnableBusMaster() => _pci.SetBusMaster(true);

    /// <summary>Enables edu's MSI (its one vector) through Devices.Pci's <see cref="VfioPciDevice.Msi"/> and returns the
    /// vector's event, owned by the device's MSI (freed by <see cref="DisableMsi"/> or this driver's disposal). Set bus
    /// mastering too (<see cref="EnableBusMaster"/>): an MSI is a memory write by the device.</summary>
    /// <returns>The event that counts edu's MSIs.</returns>
    /// <exception cref="InvalidOperationException">MSI is enabled already, or INTx or MSI-X is.</exception>
    /// <exception cref="VfioException">The kernel refused.</exception>
    public InterruptEvent EnableMsi()
    {
        _pci.Msi.Enable(1, acceptFewer: false);
        return _pci.Msi.GetVector(0);
    }

    /// <summary>Disables MSI and frees its event; does nothing when it is not enabled.</summary>
    public void DisableMsi() => _pci.Msi.Disable();

    /// <summary>Raises an interrupt with <paramref name="status"/> OR'd into the interrupt status (0x60).</summary>
    /// <param name="status">The status bits.</param>
    public void RaiseInterrupt(uint status) => Write32(0x60, status);

    /// <summary>The interrupt status register (0x24).</summary>
    public uint ReadInterruptStatus() => Read32(0x24);

    /// <summary>Acknowledges (clears) interrupt status bits (0x64); edu lowers INTx when none are left.</summary>
    /// <param name="status">The bits to clear.</param>
    public void AcknowledgeInterrupt(uint status) => Write32(0x64, status);

    /// <summary>Copies <paramref name="count"/> bytes from RAM at <paramref name="iova"/> into edu's buffer at
    /// <paramref name="offset"/> and waits for the engine.</summary>
    /// <param name="iova">The source IOVA.</param>
    /// <param name="offset">The offset in edu's buffer.</param>
    /// <param name="count">The number of bytes (the buffer is 4 KiB).</param>
    /// <param name="timeout">How long to wait.</param>
    /// <param name="raiseInterrupt">True to have edu raise interrupt 0x100 when done.</param>
    public void DmaToDevice(ulong iova, ulong offset, ulong count, TimeSpan timeout, bool raiseInterrupt = false)
        => Dma(iova, BufferAddress + offset, count, raiseInterrupt ? 4UL : 0UL, timeout);

    /// <summary>Copies <paramref name="count"/> bytes from edu's buffer at <paramref name="offset"/> to RAM at
    /// <paramref name="iova"/> and waits for the engine.</summary>
    /// <param name="offset">The offset in edu's buffer.</param>
    /// <param name="iova">The destination IOVA.</param>
    /// <param name="count">The number of bytes.</param>
    /// <param name="timeout">How long to wait.</param>
    /// <param name="raiseInterrupt">True to have edu raise interrupt 0x100 when done.</param>
    public void DmaFromDevice(ulong offset, ulong iova, ulong count, TimeSpan timeout, bool raiseInterrupt = false)
        => Dma(BufferAddress + offset, iova, count, 2UL | (raiseInterrupt ? 4UL : 0UL), timeout);

    /// <inheritdoc/>
    public void Dispose() => _pci.Dispose();

    private void Dma(ulong source, ulong destination, ulong count, ulong command, TimeSpan timeout)
    {
        if (count is 0 or > BufferSize)
        {
            // QEMU 10's edu logs an out-of-range DMA and then performs it, corrupting its heap: never ask for one.
            throw new ArgumentOutOfRangeException(nameof(count), count, "edu's DMA buffer is 4 KiB.");
        }
        Write64(0x80, source);
        Write64(0x88, destination);
        Write64(0x90, count);
        Write64(0x98, command | 1);
        WaitWhile(() => (Read64(0x98) & 1) != 0, timeout, "DMA");
    }

    private static void WaitWhile(Func<bool> busy, TimeSpan timeout, string what)
    {
        long start = Stopwatch.GetTimestamp();
        while (busy())
        {
            if (Stopwatch.GetElapsedTime(start) > timeout)
            {
                throw new TimeoutException($"edu's {what} did not finish within {timeout.TotalSeconds:0.#} s.");
            }
            Thread.Sleep(1);
        }
    }
}
