from a3lign_dfer.markdown_table import markdown_table


def test_header_rule_and_one_line_per_row_with_cells_through_str():
    table = markdown_table(["class", "clips", "share"], [["happy", 3, 0.75], ("sad", None, "")])
    assert table == ("| class | clips | share |\n"
                     "|---|---|---|\n"
                     "| happy | 3 | 0.75 |\n"
                     "| sad | None |  |")


def test_rows_may_be_a_generator_and_none_leaves_the_header_alone():
    assert markdown_table(("a", 1), ([x, x * x] for x in range(2))) == "| a | 1 |\n|---|---|\n| 0 | 0 |\n| 1 | 1 |"
    assert markdown_table(["a"], []) == "| a |\n|---|"
