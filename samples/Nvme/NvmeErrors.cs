// SPDX-License-Identifier: MIT
namespace Vfio.Samples.Nvme;

/// <summary>An NVMe command completed with an error status: names the command, its queue and the status.</summary>
public sealed class NvmeCommandException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="device">The controller's device name.</param>
    /// <param name="command">The command's name, e.g. "Identify Controller".</param>
    /// <param name="opcode">The opcode.</param>
    /// <param name="queueId">0 for the admin queue, else the I/O submission queue's id.</param>
    /// <param name="status">The 15-bit status field of the completion (SC, SCT, CRD, M, DNR).</param>
    public NvmeCommandException(string device, string command, byte opcode, int queueId, ushort status)
        : base($"NVMe {command} (opcode 0x{opcode:x2}, {(queueId == 0 ? "admin queue" : $"I/O queue {queueId}")}) on {device} failed: "
            + $"{Describe(status)} (status code type {(status >> 8) & 7}, status code 0x{status & 0xff:x2}{((status & 0x4000) != 0 ? ", do not retry" : "")}).")
    {
        Device = device;
        Command = command;
        Opcode = opcode;
        QueueId = queueId;
        Status = status;
    }

    /// <summary>The controller's device name.</summary>
    public string Device { get; }

    /// <summary>The command's name.</summary>
    public string Command { get; }

    /// <summary>The opcode.</summary>
    public byte Opcode { get; }

    /// <summary>0 for the admin queue, else the I/O submission queue's id.</summary>
    public int QueueId { get; }

    /// <summary>The completion's 15-bit status field.</summary>
    public ushort Status { get; }

    /// <summary>The status code type (0 generic, 1 command specific, 2 media and data integrity, 3 path related).</summary>
    public int StatusCodeType => (Status >> 8) & 7;

    /// <summary>The status code.</summary>
    public byte StatusCode => (byte)Status;

    /// <summary>Do Not Retry: the same command would fail again.</summary>
    public bool DoNotRetry => (Status & 0x4000) != 0;

    /// <summary>The NVMe base specification's name for a status (type and code), or a generic description.</summary>
    /// <param name="status">The status field.</param>
    /// <returns>The name.</returns>
    public static string Describe(ushort status) => ((status >> 8) & 7, status & 0xff) switch
    {
        (0, 0x00) => "Successful Completion",
        (0, 0x01) => "Invalid Command Opcode",
        (0, 0x02) => "Invalid Field in Command",
        (0, 0x03) => "Command ID Conflict",
        (0, 0x04) => "Data Transfer Error",
        (0, 0x06) => "Internal Error",
        (0, 0x07) => "Command Abort Requested",
        (0, 0x08) => "Command Aborted due to SQ Deletion",
        (0, 0x0b) => "Invalid Namespace or Format",
        (0, 0x13) => "PRP Offset Invalid",
        (0, 0x80) => "LBA Out of Range",
        (0, 0x81) => "Capacity Exceeded",
        (0, 0x82) => "Namespace Not Ready",
        (1, 0x00) => "Completion Queue Invalid",
        (1, 0x01) => "Invalid Queue Identifier",
        (1, 0x02) => "Invalid Queue Size",
        (1, 0x08) => "Invalid Interrupt Vector",
        (1, 0x0c) => "Invalid Queue Deletion",
        (2, 0x80) => "Write Fault",
        (2, 0x81) => "Unrecovered Read Error",
        (int type, int code) => $"status type {type} code 0x{code:x2}",
    };
}

/// <summary>An NVMe command did not complete in time (the controller may be hung or its interrupts lost).</summary>
public sealed class NvmeTimeoutException : TimeoutException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="device">The controller's device name.</param>
    /// <param name="command">The command's name.</param>
    /// <param name="timeout">How long the driver waited.</param>
    public NvmeTimeoutException(string device, string command, TimeSpan timeout)
        : base($"NVMe {command} on {device} did not complete within {timeout.TotalSeconds:0.###} s: check that bus mastering "
            + "and MSI-X are enabled and that the controller is not in a fatal state (CSTS.CFS); reset the controller to recover.")
    {
        Device = device;
        Command = command;
    }

    /// <summary>The controller's device name.</summary>
    public string Device { get; }

    /// <summary>The command's name.</summary>
    public string Command { get; }
}

/// <summary>The controller itself failed: it did not become ready or not ready in CAP.TO, reported a fatal status
/// (CSTS.CFS), or offers nothing this driver can use.</summary>
public sealed class NvmeControllerException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="device">The controller's device name.</param>
    /// <param name="message">What failed and what to do.</param>
    public NvmeControllerException(string device, string message)
        : base($"NVMe controller {device}: {message}") => Device = device;

    /// <summary>The controller's device name.</summary>
    public string Device { get; }
}
