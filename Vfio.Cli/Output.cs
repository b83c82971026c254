// SPDX-License-Identifier: MIT
using System.Globalization;
using Spectre.Console;

namespace Vfio.Cli;

/// <summary>Human output helpers: plain-text tables (cells are never read as markup) and number formats.</summary>
internal static class Output
{
    internal static Table Table(params string[] columns)
    {
        var table = new Table { Border = TableBorder.Simple };
        foreach (string column in columns)
        {
            table.AddColumn(new TableColumn(new Text(column, new Style(decoration: Decoration.Bold))));
        }
        return table;
    }

    internal static void Row(Table table, params string[] cells) => table.AddRow([.. cells.Select(static c => (Spectre.Console.Rendering.IRenderable)new Text(c))]);

    internal static void KernelLine(IAnsiConsole console, KernelSession session)
    {
        if (session.IsSimulated)
        {
            console.WriteLine($"Kernel: simulator (an in-process model of Linux 6.12 VFIO and iommufd with the testbed's devices), because {session.SimulatorReason}.");
        }
    }

    /// <summary>A status word in its colour (ok green, warn yellow, fail red, skip dim); plain without colour.</summary>
    internal static Text Status(string status, string text) => new(text, status switch
    {
        "ok" => new Style(Color.Green),
        "warn" => new Style(Color.Yellow),
        "fail" => new Style(Color.Red, decoration: Decoration.Bold),
        _ => new Style(decoration: Decoration.Dim),
    });

    internal static string Hex(ulong value) => "0x" + value.ToString("x", CultureInfo.InvariantCulture);

    /// <summary>A byte count as a person reads it: 4 KiB, 2 MiB, 1 GiB, or bytes.</summary>
    internal static string Size(ulong bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        int unit = 0;
        ulong value = bytes;
        while (value >= 1024 && value % 1024 == 0 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return unit == 0 && bytes >= 1024 ? Hex(bytes) : string.Create(CultureInfo.InvariantCulture, $"{value} {units[unit]}");
    }

    internal static string Milliseconds(double ms) => ms.ToString("0.000", CultureInfo.InvariantCulture) + " ms";
}
