"""What a run leaves behind: atomic files, figures, its output folder, the machine it ran on."""
