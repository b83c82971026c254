// SPDX-License-Identifier: MIT
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Vfio.Cli;

/// <summary>
/// Tables that never break an address: a table is printed as a table when its natural width fits the console; otherwise
/// each row becomes a record (its first cell as a heading, then one "HEADER  value" line per other cell, the value
/// wrapping at spaces only), so a PCI address, a path or an IOVA range stays whole at any width.
/// </summary>
internal static class TableOutput
{
    private const int Unbounded = 4096;

    /// <summary>Writes <paramref name="table"/> as a table when it fits <paramref name="console"/>'s width, else as records.</summary>
    internal static void WriteFitted(this IAnsiConsole console, Table table)
    {
        string[] headers = [.. table.Columns.Select(static c => Plain(c.Header))];
        List<string[]> rows = [.. table.Rows.Select(static r => r.Select(Plain).ToArray())];
        int natural = Plain(table).Split('\n').Max(static l => l.TrimEnd().Length);
        if (natural <= console.Profile.Width)
        {
            console.Write(table);
            return;
        }
        foreach (string[] row in rows)
        {
            console.Write(new Text(headers[0] + " " + row[0] + "\n", new Style(decoration: Decoration.Bold)));
            var grid = new Grid();
            grid.AddColumn(new GridColumn { NoWrap = true, Padding = new Padding(2, 0, 1, 0) });
            grid.AddColumn(new GridColumn());
            for (int i = 1; i < headers.Length; i++)
            {
                grid.AddRow(new Text(headers[i]), new Text(row[i].Length == 0 ? "-" : row[i]));
            }
            console.Write(grid);
        }
    }

    /// <summary>The text a renderable prints on an unbounded console without colour (a cell's text, a table's lines).</summary>
    private static string Plain(IRenderable renderable)
    {
        using var writer = new StringWriter();
        IAnsiConsole plain = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        plain.Profile.Width = Unbounded;
        plain.Write(renderable);
        return writer.ToString().TrimEnd('\n', '\r');
    }
}
